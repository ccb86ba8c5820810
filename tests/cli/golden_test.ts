/**
 * CLI behaviour pinned as data: arguments (and config, env) → stdout, stderr, exit code.
 *
 * Expected stdout lives in `golden/<name>.out` when long; `{{FIXTURE}}` and `{{TMP}}` stand for the fixture's
 * and the case's directories. `GPUCTL_UPDATE_GOLDEN=1 deno task test` rewrites the golden files.
 *
 * Every case runs twice: from source, and as the artifact a host runs (`dist/gpuctl`, the bundle inside it), so a
 * failure only the bundle has fails here.
 */
import { assertEquals, assertMatch } from "../assert.ts";
import { type FakeDriver, fakeDriver, fixtureConfig, gpu, standardSpec } from "../fixtures/driver.ts";
import { artifact, DENO, PROJECT, runGpuctl, tempDir } from "../helpers.ts";
import { VERSION } from "../../version.ts";

interface Case {
  name: string;
  args: string[];
  /** The config file's text; by default one pointing at the standard fixture. `null`: no config file. */
  config?: (d: FakeDriver, tmp: string) => string | null;
  spec?: Parameters<typeof fakeDriver>[0];
  env?: (tmp: string) => Record<string, string>;
  /** Exact stdout, a pattern, or `golden` for golden/<name>.out. */
  stdout: string | RegExp | "golden";
  stderr: string | RegExp;
  code: number;
  /** Run only from source, or only as the artifact (default: both). */
  only?: "source" | "dist/gpuctl";
  /** Invoke through a link with this name (argv0 dispatch). */
  argv0?: string;
  stdin?: string;
  setup?: (tmp: string, d: FakeDriver) => void;
  after?: (tmp: string, stdout: string) => void;
}

const noNvml = (d: FakeDriver, tmp: string) =>
  JSON.stringify({ driverRoot: tmp, devRoot: d.dev, procRoot: d.proc, nvmlLibrary: "libnvidia-ml.so.1" });

/** A stand-in for runc: prints how it was called and exits 7, so that the exit code is seen to pass through. */
const writeFakeRunc = (tmp: string) =>
  Deno.writeTextFileSync(
    `${tmp}/fake-runc`,
    '#!/bin/sh\necho "argv0=${0##*/} args=$* SHIM_TEST=$SHIM_TEST"\nexit 7\n',
    { mode: 0o755 },
  );

const CASES: Case[] = [
  {
    name: "version",
    args: ["--version"],
    stdout: new RegExp(
      `^gpuctl ${
        VERSION.replaceAll(".", "\\.")
      }\n(source|packed|compiled)(, commit [0-9a-f]{12}(\\+dirty)?, built [0-9TZ:-]+)?, Deno ${
        Deno.version.deno.replaceAll(".", "\\.")
      }\n$`,
    ),
    stderr: "",
    code: 0,
  },
  { name: "help", args: ["--help"], stdout: "golden", stderr: "", code: 0 },
  // `gpuctl help CMD` is CMD's help.
  { name: "help-info", args: ["help", "info"], stdout: "golden", stderr: "", code: 0 },
  {
    name: "help-unknown",
    args: ["help", "bogus"],
    stdout: "",
    stderr: /^gpuctl: bogus: unknown command \(commands: /,
    code: 2,
  },
  {
    name: "config-default-json",
    args: ["config", "--default", "--json"],
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    name: "no-args",
    args: [],
    stdout: "",
    stderr: /^gpuctl \d+\.\d+\.\d+: NVIDIA GPUs in containers/,
    code: 2,
  },
  {
    name: "unknown-command",
    args: ["frobnicate"],
    stdout: "",
    stderr:
      "gpuctl: frobnicate: unknown command (commands: cdi, completion, config, configure, doctor, hook, info, install, list, runtime, serve, system)\n",
    code: 2,
  },
  {
    name: "unknown-global",
    args: ["--frob", "info"],
    stdout: "",
    stderr: "gpuctl: --frob: unknown global option (see 'gpuctl --help')\n",
    code: 2,
  },
  {
    name: "bad-log-level",
    args: ["--log-level", "loud", "info"],
    stdout: "",
    stderr: 'gpuctl: --log-level: unknown level "loud" (use debug, info, warn, error)\n',
    code: 2,
  },
  {
    name: "config-needs-value",
    args: ["--config"],
    stdout: "",
    stderr: "gpuctl: --config: needs a value\n",
    code: 2,
  },
  { name: "info-help", args: ["info", "--help"], stdout: "golden", stderr: "", code: 0 },
  {
    name: "info-unknown-option",
    args: ["info", "--xml"],
    stdout: "",
    stderr: "gpuctl: info: Unknown option --xml (see 'gpuctl info --help')\n",
    code: 2,
  },
  {
    name: "info-json-and-csv",
    args: ["info", "--json", "--csv"],
    stdout: "",
    stderr: "gpuctl: info: --json and --csv exclude each other\n",
    code: 2,
  },
  {
    name: "info-bad-source",
    args: ["info", "--source", "pci"],
    stdout: "",
    stderr: 'gpuctl: info --source: unknown source "pci" (use auto, nvml or proc)\n',
    code: 2,
  },
  { name: "info-text", args: ["info"], stdout: "golden", stderr: "", code: 0 },
  { name: "info-csv", args: ["info", "--csv"], stdout: "golden", stderr: "", code: 0 },
  { name: "info-json", args: ["info", "--json"], stdout: "golden", stderr: "", code: 0 },
  // The kernel does not say whether MIG is on: unknown, not "disabled".
  { name: "info-proc-text", args: ["info", "--source", "proc"], stdout: "golden", stderr: "", code: 0 },
  {
    name: "info-proc-json",
    args: ["info", "--source", "proc", "--json"],
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    name: "info-koffi-json",
    args: ["info", "--json"],
    env: () => ({ GPUCTL_FFI: "koffi" }),
    only: "source",
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    name: "info-koffi-not-in-the-artifact",
    args: ["info", "--json"],
    env: () => ({ GPUCTL_FFI: "koffi" }),
    only: "dist/gpuctl",
    stdout: "",
    stderr:
      "gpuctl: GPUCTL_FFI=koffi: this gpuctl has no koffi backend (only gpuctl run from source with its npm packages has it); unset GPUCTL_FFI\n",
    code: 1,
  },
  {
    name: "info-no-gpus",
    args: ["info"],
    spec: { ...standardSpec(0) },
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    name: "info-driver-missing",
    args: ["info"],
    config: (_d, tmp) => JSON.stringify({ nvmlLibrary: `${tmp}/libnvidia-ml.so.1`, procRoot: tmp }),
    stdout: "",
    stderr:
      "gpuctl: NVIDIA driver not found: libnvidia-ml.so.1 could not be loaded ({{TMP}}/libnvidia-ml.so.1: cannot open shared object file: No such file or directory)\n",
    code: 1,
  },
  {
    name: "info-driver-missing-soname",
    args: ["info", "--source", "nvml"],
    config: noNvml,
    stdout: "",
    stderr:
      /^gpuctl: NVIDIA driver not found: libnvidia-ml\.so\.1 could not be loaded \(not found under driver root .* in \/usr\/lib\/x86_64-linux-gnu, /,
    code: 1,
  },
  {
    name: "info-falls-back-to-proc",
    args: ["info", "--csv"],
    config: noNvml,
    stdout: "golden",
    stderr:
      /^gpuctl: warning: NVIDIA driver not found: libnvidia-ml\.so\.1 could not be loaded .*; reading .*\/proc\/driver\/nvidia instead\n$/,
    code: 0,
  },
  {
    // NVML cannot reach the kernel driver that /proc shows loaded (no usable /dev/nvidiactl): /proc, said so.
    name: "info-nvml-driver-not-loaded",
    args: ["info"],
    spec: { ...standardSpec(1), failInit: 9 },
    stdout: "golden",
    stderr:
      /^gpuctl: warning: NVML initialization failed: nvmlInit_v2 failed: Driver Not Loaded \(is the nvidia kernel module loaded\?\); reading .*\/proc\/driver\/nvidia instead\n$/,
    code: 0,
  },
  {
    name: "info-nvml-init-fails",
    args: ["info"],
    spec: { ...standardSpec(1), failInit: 18 },
    stdout: "",
    stderr:
      "gpuctl: NVML initialization failed: nvmlInit_v2 failed: RM has detected an NVML/RM version mismatch. (the user-space driver and the kernel module differ in version; reboot or reload the module)\n",
    code: 1,
  },
  {
    name: "info-gpu-lost",
    args: ["info", "--json"],
    spec: { ...standardSpec(1), gpus: [gpu(0, { lost: true })] },
    stdout: "",
    stderr:
      "gpuctl: GPU 0: nvmlDeviceGetMinorNumber failed: GPU is lost (the GPU fell off the bus; check dmesg, then reset the GPU or reboot)\n",
    code: 1,
  },
  {
    name: "config-unknown-key",
    args: ["info"],
    config: () => '{\n  // typo\n  "driverroot": "/"\n}\n',
    stdout: "",
    stderr:
      'gpuctl: {{TMP}}/config.jsonc:3:3: unknown key "driverroot" (known keys: driverRoot, devRoot, procRoot, sysRoot, nvmlLibrary, logFile, logLevel, pluginsDir, libraryDirs, binaryDirs, acceptEnvWhenUnprivileged, acceptVolumeMounts, disableRequire, swarmResource, cdiAnnotationPrefixes, cdiKinds, cdiAnnotationKinds, cdiSpecDirs, cudaCompat, noCgroups, nvmlTimeout, cacheDir, mode, runtimes, hookPath)\n',
    code: 1,
  },
  {
    name: "config-wrong-type",
    args: ["info"],
    config: () => '{"logLevel": 3}',
    stdout: "",
    stderr:
      'gpuctl: {{TMP}}/config.jsonc:1:2: "logLevel" must be one of "debug", "info", "warn", "error", not 3\n',
    code: 1,
  },
  {
    name: "config-syntax",
    args: ["info"],
    config: () => '{"logLevel": "info" "x": 1}',
    stdout: "",
    stderr:
      "gpuctl: {{TMP}}/config.jsonc:1:21: not valid JSONC: expected ',' between two items ('gpuctl config --default' shows a valid file)\n",
    code: 1,
  },
  {
    name: "config-explicit-missing",
    args: ["info"],
    config: () => null,
    env: (tmp) => ({ GPUCTL_CONFIG: `${tmp}/absent.jsonc` }),
    stdout: "",
    stderr: "gpuctl: config {{TMP}}/absent.jsonc: no such file (give an existing --config FILE)\n",
    code: 1,
  },
  {
    name: "help-works-with-broken-config",
    args: ["info", "--help"],
    config: () => "{broken",
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    name: "log-file-gets-json-lines",
    args: ["--log-level", "debug", "info", "--source", "proc"],
    config: (d, tmp) => fixtureConfig(d, { logFile: `${tmp}/gpuctl.log` }),
    stdout: "golden",
    stderr: "",
    code: 0,
    after: (tmp) => {
      const lines = Deno.readTextFileSync(`${tmp}/gpuctl.log`).trim().split("\n").map((l) => JSON.parse(l));
      assertEquals(lines.length, 1);
      assertEquals([lines[0].level, lines[0].component, lines[0].msg, lines[0].devices], [
        "debug",
        "info",
        "inventory",
        2,
      ]);
    },
  },
  {
    name: "unwritable-log-file-does-not-fail",
    args: ["info", "--source", "proc", "--json"],
    config: (d) => fixtureConfig(d, { logFile: "/proc/gpuctl-cannot-write-here.log", logLevel: "debug" }),
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    name: "argv0-hook-dispatch",
    args: ["--help"],
    argv0: "nvidia-container-runtime-hook",
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    name: "hook-empty-state",
    args: ["prestart"],
    argv0: "nvidia-container-runtime-hook",
    stdout: "",
    stderr: "gpuctl: container state on stdin: is not valid JSON: unexpected end at line 1, column 1\n",
    code: 1,
  },
  {
    name: "hook-bad-stage",
    args: ["hook", "prestop"],
    stdout: "",
    stderr: 'gpuctl: hook: unknown stage "prestop" (use prestart, or container-edits)\n',
    code: 2,
  },
  {
    name: "hook-bad-state",
    args: ["hook", "prestart"],
    stdin: '{"pid": -4, "bundle": "/x"}',
    stdout: "",
    stderr: 'gpuctl: container state on stdin: has no valid "pid"\n',
    code: 1,
  },
  {
    name: "hook-missing-bundle",
    args: ["hook", "prestart"],
    stdin: '{"pid": 1, "bundle": "/nonexistent/bundle"}',
    stdout: "",
    stderr: "gpuctl: /nonexistent/bundle/config.json: cannot be opened: No such file or directory\n",
    code: 1,
  },
  {
    name: "hook-pid-gone",
    args: ["hook", "prestart"],
    stdin: '{"pid": 4194304, "bundle": "{{TMP}}/bundle"}',
    setup: (tmp) => {
      Deno.mkdirSync(`${tmp}/bundle/rootfs`, { recursive: true });
      Deno.writeTextFileSync(
        `${tmp}/bundle/config.json`,
        JSON.stringify({ process: { env: ["NVIDIA_VISIBLE_DEVICES=0"] } }),
      );
    },
    stdout: "",
    stderr: "gpuctl: container process 4194304: is gone (did the container exit before its hook?)\n",
    code: 1,
  },
  {
    name: "hook-malformed-config-json",
    args: ["hook", "prestart"],
    stdin: '{"pid": 1, "bundle": "{{TMP}}/bundle"}',
    setup: (tmp) => {
      Deno.mkdirSync(`${tmp}/bundle`, { recursive: true });
      Deno.writeTextFileSync(`${tmp}/bundle/config.json`, '{"process": {"env": "NVIDIA_VISIBLE_DEVICES=0"}}');
    },
    stdout: "",
    stderr: 'gpuctl: {{TMP}}/bundle/config.json: "process.env" is not a list of strings\n',
    code: 1,
  },
  {
    name: "hook-config-json-not-json",
    args: ["hook", "prestart"],
    stdin: '{"pid": 1, "bundle": "{{TMP}}/bundle"}',
    setup: (tmp) => {
      Deno.mkdirSync(`${tmp}/bundle`, { recursive: true });
      Deno.writeTextFileSync(`${tmp}/bundle/config.json`, "\u0000\u0001binary");
    },
    stdout: "",
    // Where it is wrong, never what it holds (config.json may be a link to a host file).
    stderr:
      "gpuctl: {{TMP}}/bundle/config.json: is not valid JSON: unexpected character at line 1, column 1\n",
    code: 1,
  },
  { name: "hook-poststop-noop", args: ["hook", "poststop"], stdout: "", stderr: "", code: 0 },
  { name: "list-help", args: ["list", "--help"], stdout: "golden", stderr: "", code: 0 },
  { name: "list-default", args: ["list"], stdout: "golden", stderr: "", code: 0 },
  ...["utility", "compute", "video", "graphics", "display", "ngx", "all"].map((cap): Case => ({
    name: `list-capability-${cap}`,
    args: ["list", "--capabilities", cap],
    stdout: "golden",
    stderr: "",
    code: 0,
  })),
  {
    name: "list-compat32",
    args: ["list", "--compat32", "--libraries"],
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    name: "list-filters",
    args: ["list", "--capabilities", "all", "--device-nodes", "--firmware", "--ipcs", "--files"],
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    name: "list-one-gpu-nodes",
    args: ["list", "--device", "0", "--device-nodes"],
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    name: "list-none-nodes",
    args: ["list", "--device", "none", "--device-nodes"],
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    name: "list-mig-nodes",
    args: ["list", "--device", "1:1", "--device-nodes"],
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    name: "list-mig-json",
    args: [
      "list",
      "--device",
      "MIG-01000000-aaaa-bbbb-cccc-dddd00000000",
      "--capabilities",
      "utility",
      "--json",
    ],
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    name: "list-rejects-wrong-version",
    args: ["list", "--capabilities", "graphics,video", "--json"],
    stdout: "golden",
    stderr: "",
    code: 0,
    after: (_tmp, stdout) => {
      const plan = JSON.parse(stdout);
      const reasons = plan.rejected.map((r: { path: string; reason: string }) => `${r.path}: ${r.reason}`);
      assertEquals(reasons, [
        "/usr/lib/x86_64-linux-gnu/libnvidia-opticalflow.so.470.82.01: version 470.82.01 does not match the driver 580.95.05",
        "/usr/lib/x86_64-linux-gnu/libnvidia-fbc.so.470.82.01: version 470.82.01 does not match the driver 580.95.05",
      ]);
      const libs = plan.mounts.filter((m: { kind: string }) => m.kind === "library").map((
        m: { containerPath: string },
      ) => m.containerPath);
      assertEquals(libs.some((l: string) => l.includes("470")), false);
    },
  },
  {
    name: "list-usr-local-nvidia-layout",
    args: ["list", "--binaries", "--libraries"],
    spec: { ...standardSpec(2), layout: "usr-local-nvidia" },
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    name: "list-usr-local-nvidia-passes-over-wrapper",
    args: ["list", "--capabilities", "utility", "--json"],
    spec: { ...standardSpec(2), layout: "usr-local-nvidia" },
    stdout: "golden",
    stderr: "",
    code: 0,
    after: (_tmp, stdout) => {
      // /usr/bin/nvidia-smi is a shell script there: passed over, with the reason, for the real binary.
      const plan = JSON.parse(stdout);
      assertEquals(plan.rejected, [
        {
          capability: "utility",
          path: "/usr/bin/nvidia-smi",
          reason: "not an ELF executable (a wrapper script?); looking further",
        },
      ]);
      const smi = plan.mounts.find((m: { containerPath: string }) =>
        m.containerPath === "/usr/bin/nvidia-smi"
      );
      assertEquals(smi.hostPath.endsWith("/root/usr/local/nvidia/bin/nvidia-smi"), true);
    },
  },
  {
    name: "list-nixos-layout-no-ldcache",
    args: ["list", "--compat32", "--binaries", "--libraries"],
    spec: { ...standardSpec(1), layout: "nixos" },
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    name: "list-declarative-plugin",
    args: ["list", "--capabilities", "extras", "--files", "--binaries", "--device-nodes"],
    config: (d, tmp) => fixtureConfig(d, { pluginsDir: `${tmp}/plugins.d` }),
    setup: (tmp) => {
      Deno.mkdirSync(`${tmp}/plugins.d`);
      Deno.writeTextFileSync(
        `${tmp}/plugins.d/extras.jsonc`,
        '// site extras\n{"capability": "extras", "binaries": ["nvidia-debugdump"], "files": ["/etc/vulkan/icd.d/nvidia_icd.json"],\n "deviceNodes": ["/dev/nvidia-modeset"]}\n',
      );
    },
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    // A plugin for hardware this host lacks stands in the way of no container that does not ask for it.
    name: "list-plugin-for-absent-hardware",
    args: ["list", "--device-nodes"],
    config: (d, tmp) => fixtureConfig(d, { pluginsDir: `${tmp}/plugins.d` }),
    setup: (tmp) => {
      Deno.mkdirSync(`${tmp}/plugins.d`);
      Deno.writeTextFileSync(
        `${tmp}/plugins.d/bad.jsonc`,
        '{\n  "capability": "bad",\n  "deviceNodes": ["/dev/nope0", "/dev/nope-fs*"]\n}\n',
      );
    },
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    // Asked for, a capability whose only contribution is nodes the host lacks is refused.
    name: "list-plugin-nodes-missing",
    args: ["list", "--capabilities", "compute,bad"],
    config: (d, tmp) => fixtureConfig(d, { pluginsDir: `${tmp}/plugins.d` }),
    setup: (tmp) => {
      Deno.mkdirSync(`${tmp}/plugins.d`);
      Deno.writeTextFileSync(
        `${tmp}/plugins.d/bad.jsonc`,
        '{\n  "capability": "bad",\n  "deviceNodes": ["/dev/nope0", "/dev/nope-fs*"]\n}\n',
      );
    },
    stdout: "",
    stderr:
      "gpuctl: capability bad: this host has none of its device nodes (/dev/nope0, /dev/nope-fs*); is its kernel module loaded?\n",
    code: 1,
  },
  {
    name: "list-bad-device",
    args: ["list", "--device", "0,7"],
    stdout: "",
    stderr: 'gpuctl: --device: unknown device "7" (this host has GPUs 0, 1 and MIG devices 1:0, 1:1)\n',
    code: 1,
  },
  {
    name: "list-bad-capability",
    args: ["list", "--capabilities", "compute,opengl"],
    stdout: "",
    stderr:
      'gpuctl: --capabilities: unknown capability "opengl" (known: compat32, compute, display, gdrcopy, gds, graphics, mofed, ngx, nvswitch, utility, video, all)\n',
    code: 1,
  },
  // The shim's pass-through, run by cli/main.ts on its own: runc's arguments, environment and exit code pass
  // unchanged; anything it cannot do plainly goes the long way and is explained there.
  {
    name: "runtime-pass-through",
    args: ["runtime", "--root", "/run/x", "state", "ctr-1"],
    config: (d, tmp) => fixtureConfig(d, { runtimes: [`${tmp}/no-such-runc`, `${tmp}/fake-runc`] }),
    setup: writeFakeRunc,
    env: () => ({ SHIM_TEST: "kept" }),
    stdout: "argv0=fake-runc args=--root /run/x state ctr-1 SHIM_TEST=kept\n",
    stderr: "",
    code: 7,
  },
  {
    name: "runtime-pass-through-argv0",
    args: ["kill", "ctr-1", "KILL"],
    argv0: "gpuctl-runtime",
    config: (d, tmp) => fixtureConfig(d, { runtimes: [`${tmp}/fake-runc`] }),
    setup: writeFakeRunc,
    env: () => ({ SHIM_TEST: "kept" }),
    stdout: "argv0=fake-runc args=kill ctr-1 KILL SHIM_TEST=kept\n",
    stderr: "",
    code: 7,
  },
  {
    name: "runtime-pass-through-global-config-option",
    args: ["--config", "{{TMP}}/other.jsonc", "runtime", "delete", "ctr-1"],
    config: () => null,
    setup: (tmp) => {
      writeFakeRunc(tmp);
      Deno.writeTextFileSync(`${tmp}/other.jsonc`, JSON.stringify({ runtimes: [`${tmp}/fake-runc`] }));
    },
    env: () => ({ SHIM_TEST: "kept" }),
    stdout: "argv0=fake-runc args=delete ctr-1 SHIM_TEST=kept\n",
    stderr: "",
    code: 7,
  },
  {
    name: "runtime-pass-through-no-runtime",
    args: ["runtime", "state", "ctr-1"],
    config: (d, tmp) => fixtureConfig(d, { runtimes: [`${tmp}/no-such-runc`] }),
    stdout: "",
    stderr:
      'gpuctl: low-level runtime: none of {{TMP}}/no-such-runc found on PATH or in /usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin, /sbin, /bin (install runc, or set "runtimes" in the configuration)\n',
    code: 1,
  },
  {
    name: "runtime-pass-through-invalid-config",
    args: ["runtime", "state", "ctr-1"],
    config: () => '{\n  "runtimes": ["runc"],\n  "mode": "fast"\n}\n',
    stdout: "",
    stderr: 'gpuctl: {{TMP}}/config.jsonc:3:3: "mode" must be one of "spec", "hook", not "fast"\n',
    code: 1,
  },
  { name: "runtime-help", args: ["runtime", "--help"], stdout: "golden", stderr: "", code: 0 },
  {
    name: "config-shows-sources",
    args: ["config"],
    config: () => '{\n  // two keys set\n  "logLevel": "debug",\n\n  "cudaCompat": false\n}\n',
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    name: "config-json",
    args: ["config", "--json"],
    config: () => '{ "mode": "hook" }',
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  { name: "config-default", args: ["config", "--default"], stdout: "golden", stderr: "", code: 0 },
  // NVIDIA's command line (nvidia-ctk's forms, from its install guide and reference), as gpuctl answers it.
  { name: "nvidia-config-default", args: ["config", "default"], stdout: "golden", stderr: "", code: 0 },
  {
    name: "nvidia-ctk-config-default",
    args: ["config", "default"],
    argv0: "nvidia-ctk",
    stdout: "golden",
    // No gpuctl installed where NVIDIA's command line leads (a host may have one there).
    stderr:
      /^(gpuctl: warning: \/usr\/local\/bin\/gpuctl-runtime does not exist: every container on the runtime "nvidia" fails until it does \(gpuctl install writes it; or give --runtime-path\)\n)?$/,
    code: 0,
    after: (_tmp, out) => assertEquals(out, Deno.readTextFileSync(`${GOLDEN}/config-default.out`)),
  },
  {
    name: "nvidia-ctk-version",
    args: ["--version"],
    argv0: "nvidia-ctk",
    stdout: /^gpuctl \d+\.\d+\.\d+\n/,
    stderr: "",
    code: 0,
  },
  {
    name: "nvidia-ctk-runtime-configure-docker",
    args: ["runtime", "configure", "--runtime=docker", "--config={{TMP}}/daemon.json", "--set-as-default"],
    argv0: "nvidia-ctk",
    stdout: "golden",
    // No gpuctl installed where NVIDIA's command line leads (a host may have one there).
    stderr:
      /^(gpuctl: warning: \/usr\/local\/bin\/gpuctl-runtime does not exist: every container on the runtime "nvidia" fails until it does \(gpuctl install writes it; or give --runtime-path\)\n)?$/,
    code: 0,
    after: (tmp) =>
      assertEquals(JSON.parse(Deno.readTextFileSync(`${tmp}/daemon.json`)), {
        runtimes: { nvidia: { path: "/usr/local/bin/gpuctl-runtime" } },
        "default-runtime": "nvidia",
      }),
  },
  {
    name: "nvidia-runtime-configure-containerd",
    args: [
      "runtime",
      "configure",
      "--runtime=containerd",
      "--config={{TMP}}/config.toml",
      "--drop-in={{TMP}}/conf.d/99-gpuctl.toml",
      "--nvidia-runtime-name",
      "nvidia",
      "--nvidia-set-as-default=true",
      "--cdi.enabled",
      "--dry-run",
    ],
    stdout: "golden",
    stderr: /^(gpuctl: warning: \/usr\/local\/bin\/gpuctl-runtime does not exist: .*\n)?$/,
    code: 0,
  },
  {
    name: "nvidia-cdi-generate-flags",
    args: [
      "cdi",
      "generate",
      "--driver-root={{FIXTURE}}/root",
      "--dev-root={{FIXTURE}}/dev",
      "--nvidia-cdi-hook-path=/bin/true",
      "--format=yaml",
      "--device-name-strategy=index",
    ],
    argv0: "nvidia-ctk",
    // The driver's root and device directory from the flags alone.
    config: (d) => JSON.stringify({ procRoot: d.proc, cacheDir: null, pluginsDir: `${d.dir}/plugins.d` }),
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    name: "nvidia-cdi-generate-mode-management",
    args: ["cdi", "generate", "--mode=management"],
    argv0: "nvidia-ctk",
    stdout: "",
    stderr:
      "gpuctl: cdi generate --mode: \"management\": gpuctl's specs are NVIDIA's nvml mode (auto, nvml), or a gated capability (gds, mofed, gdrcopy, nvswitch); MIG management goes through the runtime (NVIDIA_MIG_CONFIG_DEVICES), WSL and Tegra (csv) are not supported\n",
    code: 2,
  },
  {
    name: "cdi-generate-output-directory",
    args: ["cdi", "generate", "--output", "{{TMP}}"],
    stdout: "",
    stderr:
      "gpuctl: cdi generate --output {{TMP}}: is a directory: name the file (e.g. /var/run/cdi/nvidia.json)\n",
    code: 2,
  },
  {
    name: "cdi-generate-output-not-a-spec-name",
    args: ["cdi", "generate", "--output", "{{TMP}}/nvidia.txt"],
    stdout: "",
    stderr:
      "gpuctl: cdi generate --output {{TMP}}/nvidia.txt: must end in .json, .yaml or .yml: CDI engines read no other file from a spec directory\n",
    code: 2,
  },
  {
    name: "nvidia-system-create-device-nodes",
    args: ["system", "create-device-nodes", "--control-devices", "--dry-run"],
    argv0: "nvidia-ctk",
    stdout: "golden",
    // No gpuctl installed where NVIDIA's command line leads (a host may have one there).
    stderr:
      /^(gpuctl: warning: \/usr\/local\/bin\/gpuctl-runtime does not exist: every container on the runtime "nvidia" fails until it does \(gpuctl install writes it; or give --runtime-path\)\n)?$/,
    code: 0,
  },
  {
    name: "nvidia-ctk-hook-refused",
    args: ["hook", "update-ldcache", "--folder", "/usr/lib/x86_64-linux-gnu"],
    argv0: "nvidia-ctk",
    stdout: "",
    stderr:
      "gpuctl: nvidia-ctk hook update-ldcache: is a hook of a CDI spec that NVIDIA's nvidia-ctk wrote, which gpuctl does not run: write the spec again with gpuctl cdi generate --output FILE\n",
    code: 2,
  },
  {
    name: "nvidia-config-set",
    args: ["config", "--set", "nvidia-container-cli.root=/run/nvidia/driver", "--set", "noCgroups=true"],
    config: () => '{\n  // ours\n  "logLevel": "warn"\n}\n',
    stdout: "golden",
    stderr: "",
    code: 0,
  },
  {
    name: "nvidia-config-set-in-place",
    args: ["config", "--set", "mode=legacy", "--in-place"],
    config: () => "{}\n",
    stdout: "",
    stderr: 'gpuctl: config --set mode=legacy: "mode" must be one of "spec", "hook", not "legacy"\n',
    code: 2,
    after: (tmp) => assertEquals(Deno.readTextFileSync(`${tmp}/config.jsonc`), "{}\n", "nothing written"),
  },
  {
    name: "config-broken-file",
    args: ["config"],
    config: () => '{ "mode": "fast" }',
    stdout: "",
    stderr: 'gpuctl: {{TMP}}/config.jsonc:1:3: "mode" must be one of "spec", "hook", not "fast"\n',
    code: 1,
  },
];

const GOLDEN = `${PROJECT}/tests/cli/golden`;
const update = Deno.env.get("GPUCTL_UPDATE_GOLDEN") === "1";

for (const c of CASES) {
  for (const target of ["source", "dist/gpuctl"] as const) {
    if (c.only !== undefined && c.only !== target) continue;
    Deno.test(`gpuctl ${c.args.join(" ") || "(no args)"} [${c.name}]${target === "source" ? "" : ` (${target})`}`, async () => {
      const exe = target === "source" ? undefined : artifact().exe;
      const d = await fakeDriver(c.spec ?? standardSpec(2));
      using tmp = tempDir();
      const env: Record<string, string> = c.env?.(tmp.path) ?? {};
      const config = (c.config ?? ((d) => fixtureConfig(d)))(d, tmp.path);
      if (config !== null) {
        Deno.writeTextFileSync(`${tmp.path}/config.jsonc`, config);
        env.GPUCTL_CONFIG ??= `${tmp.path}/config.jsonc`;
      }
      c.setup?.(tmp.path, d);
      let argv0: string | undefined;
      if (c.argv0) {
        argv0 = `${tmp.path}/${c.argv0}`;
        Deno.symlinkSync(exe ?? DENO, argv0);
      }
      const r = await runGpuctl(
        c.args.map((a) => a.replaceAll("{{TMP}}", tmp.path).replaceAll("{{FIXTURE}}", d.dir)),
        {
          env,
          ...(exe ? { exe } : { entry: `${PROJECT}/cli/main.ts` }),
          ...(argv0 ? { argv0 } : {}),
          ...(c.stdin !== undefined ? { stdin: c.stdin.replaceAll("{{TMP}}", tmp.path) } : {}),
        },
      );
      const sub = (s: string) => s.replaceAll("{{FIXTURE}}", d.dir).replaceAll("{{TMP}}", tmp.path);
      const unsub = (s: string) => s.replaceAll(d.dir, "{{FIXTURE}}").replaceAll(tmp.path, "{{TMP}}");
      if (typeof c.stderr === "string") assertEquals(r.stderr, sub(c.stderr), "stderr");
      else assertMatch(r.stderr, c.stderr, "stderr");
      if (c.stdout === "golden") {
        const file = `${GOLDEN}/${c.name}.out`;
        if (update && target === "source") Deno.writeTextFileSync(file, unsub(r.stdout));
        assertEquals(r.stdout, sub(Deno.readTextFileSync(file)), "stdout");
      } else if (c.stdout instanceof RegExp) {
        assertMatch(r.stdout, c.stdout, "stdout");
      } else {
        assertEquals(r.stdout, c.stdout, "stdout");
      }
      assertEquals(r.code, c.code, "exit code");
      c.after?.(tmp.path, r.stdout);
    });
  }
}

Deno.test("VERSION matches package.json", () => {
  assertEquals(JSON.parse(Deno.readTextFileSync(`${PROJECT}/package.json`)).version, VERSION);
});
