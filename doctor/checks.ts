/**
 * `gpuctl doctor`: the chain from the kernel driver to the container engines, walked in order, each link one check
 * with what it saw and, when it is not right, the command that fixes it. Later links that depend on a broken one are
 * skipped rather than failed, so a broken host shows its cause once, not its symptoms many times.
 *
 * Everything it reads is under the configuration's roots (`driverRoot`, `devRoot`, `procRoot`, `sysRoot`,
 * `cdiSpecDirs`, `pluginsDir`) or a path given on the command line, so tests point it at broken fixtures.
 * @module
 */
import type { Config } from "../config/schema.ts";
import { parseVersionFile } from "../devices/proc.ts";
import { charLinkProblems, nodeState, wantedNodes } from "../system/nodes.ts";
import { readLdCache } from "../driver/ldcache.ts";
import { LIBRARY_DIRS_64 } from "../driver/locate.ts";
import { hostPath, statInRoot } from "../driver/rootfs.ts";
import { PROTOCOL, runningServer, serveDir } from "../serve/server.ts";
import { frontCommand, frontFresh, frontServe } from "../serve/fronts.ts";
import { DEFAULT_CONFIG_PATH } from "../config/schema.ts";
import { CDI_OUTPUT } from "../cdi/spec.ts";

export type Status = "ok" | "warn" | "fail" | "skip";

export interface Check {
  id: string;
  status: Status;
  /** What it saw, one line. */
  saw: string;
  /** For warn and fail: the command (or step) that fixes it. */
  fix?: string;
}

export interface DoctorInputs {
  config: Config;
  /** The config file in use, or null for defaults. */
  configFile: string | null;
  configError: string | null;
  /** NVIDIA's config.toml, when it is what was read (gpuctl having none), with its keys that did not carry over. */
  nvidiaConfig?: { file: string; unmapped: { key: string; why: string }[] } | null;
  /** Where gpuctl-runtime and nvidia-container-runtime-hook should be. */
  prefix: string;
  engines: ReadonlySet<Engine>;
  dockerConfig: string;
  containerdConfig: string;
  crioDropIn: string;
  /** Where Podman reads CDI specs. */
  podmanCdiDirs: readonly string[];
  /** NVML, in a child process: the GPUs it sees or why it failed. */
  nvml: () => Promise<{ gpus: number; version: string } | { error: string }>;
  /** The plan for NVIDIA_VISIBLE_DEVICES=all: what it would inject, or why not. */
  plan: () => Promise<{ gpus: number; migs: number; files: number; nodes: number } | { error: string }>;
  /** The plugin files' parse errors. */
  plugins: () => Promise<string[]>;
  /** The low-level runtime check (see {@link runtimeCheck}). */
  runtime: () => Promise<Check>;
}

/**
 * `gpuctl serve`: running or not is the host's choice (ok either way, said plainly); a running server that the
 * installed fronts do not reach — written by another gpuctl, or for another cacheDir — is a warning: every GPU
 * container then starts a gpuctl process after all.
 */
export function serveCheck(c: Config, fronts: readonly string[]): Check {
  const dir = serveDir(c.cacheDir);
  if (dir === null) {
    return ok("gpuctl.serve", "not available: cacheDir is null; each GPU container starts gpuctl");
  }
  // Alive as the fronts see it: the process the pid file names, started when the server did.
  const pid = runningServer(dir);
  if (pid === null) {
    return ok(
      "gpuctl.serve",
      "not running: each GPU container starts a gpuctl process (optional: systemctl enable --now gpuctl-serve)",
    );
  }
  const stale = fronts.filter((f) => {
    const s = frontServe(read(f) ?? "");
    return s === null || s.protocol !== PROTOCOL || s.dir !== dir;
  });
  return stale.length === 0
    ? ok("gpuctl.serve", `running (pid ${pid}, in ${dir}): GPU containers start no gpuctl process`)
    : warn(
      "gpuctl.serve",
      `running (pid ${pid}), but ${
        stale.join(" and ")
      } do not reach it (written by another gpuctl, or for another cacheDir)`,
      `gpuctl install --prefix ${stale[0]!.slice(0, stale[0]!.lastIndexOf("/"))}`,
    );
}

/** Whether runc `version` (`1.1.5`, `1.2.0-rc.1`) has the fix for CVE-2024-45310 (1.1.14, or 1.2 and later). */
export function runcFixed(version: string): boolean {
  const [a = 0, b = 0, c = 0] = version.split(/[.-]/).slice(0, 3).map((x) => parseInt(x, 10) || 0);
  return a > 1 || (a === 1 && (b > 1 || (b === 1 && c >= 14)));
}

/** The runtime the shim execs, and its version (from `<runtime> --version`). */
export async function runtimeCheck(c: Config, find: () => string | null): Promise<Check> {
  const rt = find();
  if (rt === null) {
    return fail(
      "runtime",
      `none of ${c.runtimes.join(", ")} found`,
      'install runc (>= 1.1.14), or set "runtimes"',
    );
  }
  let text = "";
  try {
    const o = await new Deno.Command(rt, { args: ["--version"], stdout: "piped", stderr: "null" }).output();
    text = new TextDecoder().decode(o.stdout);
  } catch { /* reported below */ }
  const m = /^(runc|crun) version (\S+)/m.exec(text);
  if (m === null) {
    return warn(
      "runtime",
      `${rt}: its version is not known (${text.split("\n")[0] || "no output"})`,
      "check it is runc or crun",
    );
  }
  if (m[1] === "runc" && !runcFixed(m[2]!) && c.mode === "hook") {
    // The race is in creating mount targets from the spec; in hook mode gpuctl makes them itself, by descriptor.
    return ok(
      "runtime",
      `${rt}: runc ${
        m[2]
      } (before 1.1.14: CVE-2024-45310 concerns spec mode; this host's shim runs in hook mode)`,
    );
  }
  if (m[1] === "runc" && !runcFixed(m[2]!)) {
    return warn(
      "runtime",
      `${rt} is runc ${
        m[2]
      }, which can be raced into creating a mount target on the host (CVE-2024-45310) in spec mode`,
      'upgrade runc to 1.1.14 or later, or set "mode": "hook" (the hook holds its mount targets open)',
    );
  }
  return ok("runtime", `${rt}: ${m[1]} ${m[2]}`);
}

export const ENGINES = ["docker", "containerd", "crio", "podman"] as const;
export type Engine = (typeof ENGINES)[number];

const ok = (id: string, saw: string): Check => ({ id, status: "ok", saw });
const count = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
const warn = (id: string, saw: string, fix: string): Check => ({ id, status: "warn", saw, fix });
const fail = (id: string, saw: string, fix: string): Check => ({ id, status: "fail", saw, fix });
const skip = (id: string, saw: string): Check => ({ id, status: "skip", saw });

function read(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

const exists = (p: string) => {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
};

const isExecutable = (p: string) => {
  try {
    const st = Deno.statSync(p);
    return st.isFile && ((st.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
};

/**
 * The version in the real name of the NVML library gpuctl loads (`libnvidia-ml.so.580.95.05`): `nvmlLibrary` as
 * given when it is a path, else that name looked up in the driver root as its loader would (its linker cache,
 * then the usual directories), every link resolved inside the driver root (Debian's `/etc/alternatives` links
 * are absolute: read from the host, they would name the host's files).
 */
export function userSpaceVersion(config: Config): { version: string; file: string } | null {
  const version = (real: string) => /\.so\.(\d+\.\d+(?:\.\d+)?)$/.exec(real)?.[1];
  const lib = config.nvmlLibrary;
  if (lib.includes("/")) {
    try {
      const v = version(Deno.realPathSync(lib));
      return v === undefined ? null : { version: v, file: lib };
    } catch {
      return null;
    }
  }
  const root = config.driverRoot.replace(/\/+$/, "") || "/";
  const candidates: string[] = [];
  try {
    for (const e of readLdCache(hostPath(root, "/etc/ld.so.cache"))) {
      if (e.soname === lib && e.is64) candidates.push(e.path);
    }
  } catch { /* no cache: the usual directories */ }
  for (const d of [...config.libraryDirs, ...LIBRARY_DIRS_64]) candidates.push(`${d}/${lib}`);
  for (const c of candidates) {
    const s = statInRoot(root, c);
    const v = s !== null && s.info.isFile ? version(s.path) : undefined;
    if (v !== undefined) return { version: v, file: c };
  }
  return null;
}

const RELOAD =
  "reboot, or reload the driver: rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia && modprobe nvidia";

/** Runs every check in order. */
export async function runChecks(i: DoctorInputs): Promise<Check[]> {
  const c = i.config;
  const out: Check[] = [];

  // The kernel driver and the user-space libraries.
  const kernel = parseVersionFile(read(`${c.procRoot}/driver/nvidia/version`) ?? "");
  out.push(
    kernel === null
      ? fail(
        "driver.kernel",
        `no NVIDIA kernel driver loaded (${c.procRoot}/driver/nvidia/version is absent)`,
        "modprobe nvidia (install the NVIDIA driver first if the module is absent; check dmesg)",
      )
      : ok("driver.kernel", `kernel module ${kernel} loaded`),
  );
  const user = userSpaceVersion(c);
  if (user === null) {
    out.push(skip("driver.libraries", `no ${c.nvmlLibrary} under driverRoot ${c.driverRoot} (see nvml)`));
  } else if (kernel !== null && kernel !== user.version) {
    out.push(
      fail(
        "driver.libraries",
        `kernel module ${kernel}, user-space libraries ${user.version}: the driver was upgraded and the old module is still loaded (NVML: Driver/library version mismatch)`,
        RELOAD,
      ),
    );
  } else out.push(ok("driver.libraries", `user-space libraries ${user.version} (${user.file})`));

  // NVML.
  let nvmlOk = false;
  if (user === null) {
    out.push(
      fail(
        "nvml",
        c.nvmlLibrary.includes("/")
          ? `${c.nvmlLibrary} (nvmlLibrary) is not there, or not a versioned library`
          : `${c.nvmlLibrary} not found under driverRoot ${c.driverRoot}`,
        'install the driver\'s user-space libraries, or set "driverRoot" (a containerized driver: /run/nvidia/driver) or "nvmlLibrary"',
      ),
    );
  } else if (kernel !== null && kernel !== user.version) {
    out.push(skip("nvml", "not tried: the driver's versions do not match (driver.libraries)"));
  } else {
    const n = await i.nvml();
    if ("error" in n && kernel !== null && n.error.includes("Driver Not Loaded")) {
      // The module is there (procfs says so) but NVML cannot reach it: its control node.
      out.push(
        fail(
          "nvml",
          `${n.error}, yet ${c.procRoot}/driver/nvidia shows ${kernel} loaded: NVML cannot open /dev/nvidiactl (gpuctl reads ${c.procRoot}/driver/nvidia instead, without MIG or CUDA facts)`,
          "gpuctl system create-device-nodes --control-devices (or check who may open /dev/nvidiactl)",
        ),
      );
    } else if ("error" in n) {
      out.push(fail("nvml", n.error, "see the message; nvidia-smi shows the same failure"));
    } else if (n.gpus === 0) {
      nvmlOk = true; // it answered: the plan is still worth trying (it says what a container would get)
      out.push(
        warn("nvml", `NVML ${n.version} sees no GPU`, "check lspci and dmesg: the GPUs may be off the bus"),
      );
    } else {
      nvmlOk = true;
      out.push(ok("nvml", `NVML ${n.version} sees ${n.gpus} GPU${n.gpus === 1 ? "" : "s"}`));
    }
  }

  // Device nodes, and the /dev/char links systemd needs.
  if (kernel === null) out.push(skip("devices.nodes", "no kernel driver"));
  else {
    const facts = wantedNodes(c.procRoot);
    const problems: string[] = [];
    const fixes = new Set<string>();
    const wrong = new Set<string>();
    // A headless host has no nvidia_modeset module, so no /dev/nvidia-modeset: only the display capability
    // wants it, and only where the module is loaded is its absence a problem.
    const headless = !exists(`${c.sysRoot}/module/nvidia_modeset`);
    let notes = "";
    for (const n of facts.nodes) {
      const s = nodeState(c.devRoot, n);
      const host = `${c.devRoot.replace(/\/+$/, "")}${n.path.slice("/dev".length)}`;
      if (s.state === "absent" && n.kind === "modeset" && headless) {
        notes = `; no ${host} (nvidia_modeset not loaded: a headless host, so no display capability)`;
        continue;
      }
      if (s.state === "absent") {
        problems.push(`${host} is missing`);
        fixes.add(
          `gpuctl system create-device-nodes${
            n.kind === "gpu" || n.kind === "control" ? "" : ` --${n.kind}`
          }`,
        );
      } else if (s.state === "wrong") {
        wrong.add(n.path);
        problems.push(`${host} is ${s.saw}, not ${n.major}:${n.minor} (${n.driver} in /proc/devices)`);
        fixes.add(`rm ${host} && gpuctl system create-device-nodes`);
      } else if (s.state === "unloaded" && n.kind === "uvm" && n.minor === 0) {
        problems.push(`${n.driver} is not loaded, so there is no ${host} (CUDA needs it)`);
        fixes.add("modprobe nvidia-uvm && gpuctl system create-device-nodes --uvm");
      }
    }
    out.push(
      problems.length === 0
        ? ok(
          "devices.nodes",
          `${facts.nodes.length - (notes ? 1 : 0)} nodes, majors as /proc/devices says${notes}`,
        )
        : fail("devices.nodes", problems.join("; "), [...fixes].join("; ")),
    );
    const links = charLinkProblems(c.devRoot, wrong);
    out.push(
      links.length === 0 ? ok("devices.char-links", `${c.devRoot}/char links for every NVIDIA node`) : warn(
        "devices.char-links",
        `${c.devRoot}/char: ${
          links.join(", ")
        } (systemd drops a container's device access on daemon-reload without them: NVML "Unknown Error")`,
        "gpuctl system create-dev-char-symlinks",
      ),
    );
  }

  // Cgroups.
  const v2 = read(`${c.sysRoot}/fs/cgroup/cgroup.controllers`) !== null;
  const systemd = (read(`${c.procRoot}/1/comm`) ?? "").trim() === "systemd";
  out.push(
    ok(
      "cgroups",
      `cgroup ${v2 ? "v2" : "v1"}, ${systemd ? "systemd" : "no systemd"} as init${
        c.noCgroups ? "; noCgroups: gpuctl makes no device-cgroup edits" : ""
      }`,
    ),
  );

  // The low-level runtime: runc older than 1.1.14 can be raced into creating files on the host (CVE-2024-45310);
  // gpuctl's hook path does not depend on it, spec mode does.
  out.push(await i.runtime());

  // gpuctl itself.
  out.push(
    i.configError !== null
      ? fail(
        "gpuctl.config",
        i.configError,
        "fix the line it names ('gpuctl config --default' shows every key)",
      )
      : i.nvidiaConfig && i.nvidiaConfig.unmapped.length > 0
      ? warn(
        "gpuctl.config",
        `no gpuctl configuration: NVIDIA's ${i.nvidiaConfig.file} is read, and these keys did not carry over: ${
          i.nvidiaConfig.unmapped.map((u) => `${u.key} (${u.why})`).join("; ")
        }`,
        `gpuctl config --from-nvidia --output ${DEFAULT_CONFIG_PATH} (then review what it says did not carry over)`,
      )
      : i.nvidiaConfig
      ? ok(
        "gpuctl.config",
        `no gpuctl configuration: NVIDIA's ${i.nvidiaConfig.file} is read; every key carried over`,
      )
      : ok("gpuctl.config", i.configFile === null ? "no config file: defaults" : `${i.configFile} parses`),
  );
  const pluginErrors = await i.plugins();
  out.push(
    pluginErrors.length === 0
      ? ok("gpuctl.plugins", `plugins in ${c.pluginsDir} parse`)
      : fail("gpuctl.plugins", pluginErrors.join("; "), "fix the line it names, or remove the file"),
  );
  const runtime = `${i.prefix}/gpuctl-runtime`, hook = `${i.prefix}/nvidia-container-runtime-hook`;
  const missing = [runtime, hook].filter((p) => !isExecutable(p));
  // A front whose gpuctl is gone (a checkout deleted, a copy removed by hand) fails every GPU container.
  const dangling = [runtime, hook].filter((p) => !missing.includes(p)).flatMap((p) => {
    const words = frontCommand(read(p) ?? "") ?? [];
    const gone = words.filter((w, k) => w.startsWith("/") && (k === 0 ? !isExecutable(w) : !exists(w)));
    return gone.length === 0 ? [] : [`${p} runs ${gone[0]}, which is gone`];
  });
  const configFile = i.configFile ?? DEFAULT_CONFIG_PATH;
  const stale = missing.includes(runtime) || frontFresh(runtime, configFile) ? null : runtime;
  out.push(
    dangling.length > 0
      ? fail(
        "gpuctl.links",
        `${dangling.join("; ")} (every GPU container through it fails)`,
        `gpuctl install --prefix ${i.prefix}`,
      )
      : stale !== null
      ? warn(
        "gpuctl.links",
        `${stale} was written for another configuration than ${configFile}, or before it changed: it sends every container to gpuctl (slower, never without its GPUs) until it is written again`,
        `gpuctl install --prefix ${i.prefix}`,
      )
      : missing.length === 0
      ? ok("gpuctl.links", `${runtime} and ${hook}`)
      : warn(
        "gpuctl.links",
        `${missing.join(" and ")} missing${
          missing.includes(hook)
            ? ` (docker run --gpus then fails: could not select device driver "" with capabilities: [[gpu]])`
            : ""
        }`,
        `gpuctl install --prefix ${i.prefix}`,
      ),
  );

  out.push(serveCheck(c, missing.length === 0 ? [runtime, hook] : []));

  // CDI specs: current with the driver? (Only worth asking of a working driver: a broken one makes every spec
  // look stale, and regenerating it then would be the wrong fix.)
  const driverBroken = out.some((x) => x.status === "fail" && /^(driver|nvml|devices)/.test(x.id));
  out.push(
    driverBroken
      ? skip("cdi.specs", "not checked: the driver is not working (above)")
      : await cdiCheck(c, kernel ?? user?.version ?? null),
  );

  // Engines.
  if (i.engines.has("docker")) out.push(...dockerChecks(i));
  if (i.engines.has("containerd")) out.push(await containerdCheck(i));
  if (i.engines.has("crio")) out.push(crioCheck(i));
  if (i.engines.has("podman")) out.push(podmanCheck(c, i.podmanCdiDirs));

  // The whole plan, as a container asking for every GPU would get it.
  if (!nvmlOk) out.push(skip("plan", "not tried: NVML does not answer"));
  else {
    const t0 = performance.now();
    const p = await i.plan();
    const ms = Math.round(performance.now() - t0);
    out.push(
      "error" in p
        ? fail("plan", `NVIDIA_VISIBLE_DEVICES=all: ${p.error}`, "gpuctl list --json shows the whole plan")
        : ok(
          "plan",
          `NVIDIA_VISIBLE_DEVICES=all: ${count(p.gpus, "GPU")}${
            p.migs > 0 ? ` and ${count(p.migs, "MIG device")}` : ""
          }, ${p.nodes} device nodes, ${p.files} files, ${ms} ms`,
        ),
    );
  }
  return out;
}

async function cdiCheck(c: Config, driver: string | null): Promise<Check> {
  const stale: string[] = [], hookGone: string[] = [];
  let found = 0;
  // A hook that is gone fails every container given a device of that spec (read by CDI's own rules).
  const { cdiRegistry, conflictText, loadSpecs, prepareYaml } = await import("../cdi/resolve.ts");
  await prepareYaml(c.cdiSpecDirs);
  const specs = loadSpecs(c.cdiSpecDirs);
  const conflicts = [...cdiRegistry(specs).conflicts];
  for (const s of specs) {
    const edits = [s.spec.containerEdits, ...s.spec.devices.map((d) => d.containerEdits)];
    const gone = [...new Set(edits.flatMap((e) => (e?.hooks ?? []).map((h) => h.path)))].filter((p) =>
      !isExecutable(p)
    );
    for (const p of gone) hookGone.push(`${s.file} names the hook ${p}, which is gone`);
  }
  for (const dir of c.cdiSpecDirs) {
    let names: string[] = [];
    try {
      names = [...Deno.readDirSync(dir)].filter((e) => /\.(json|ya?ml)$/.test(e.name)).map((e) => e.name)
        .sort();
    } catch { /* no such directory */ }
    for (const n of names) {
      const text = read(`${dir}/${n}`) ?? "";
      if (!/nvidia|gpuctl/i.test(text)) continue;
      found++;
      const v = /--driver-version["',\s]+([0-9.]+)/.exec(text)?.[1];
      if (driver !== null && v !== undefined && v !== driver) stale.push(`${dir}/${n} is for driver ${v}`);
      else {
        const gone = [...text.matchAll(/"hostPath"\s*:\s*"([^"]+)"|hostPath:\s*(\S+)/g)].map((m) =>
          m[1] ?? m[2]!
        )
          .find((p) => {
            try {
              Deno.lstatSync(p);
              return false;
            } catch {
              return true;
            }
          });
        if (gone !== undefined) stale.push(`${dir}/${n} names ${gone}, which is gone`);
      }
    }
  }
  if (conflicts.length > 0) {
    const [name, files] = conflicts[0]!;
    return fail(
      "cdi.specs",
      `${conflicts.length > 1 ? `${conflicts.length} CDI names are defined twice; the first: ` : ""}${
        conflictText(name, files)
      }`,
      `rm ${files.slice(1).join(" ")}`,
    );
  }
  if (hookGone.length > 0) {
    return fail(
      "cdi.specs",
      `${hookGone.join("; ")}: every container given one of its devices fails`,
      `gpuctl install --cdi --cdi-output ${hookGone[0]!.split(" ")[0]}`,
    );
  }
  if (stale.length > 0) {
    return fail(
      "cdi.specs",
      `${stale.join("; ")}${
        driver ? ` (the driver is ${driver})` : ""
      }: CDI devices would fail or get the old files`,
      `gpuctl cdi generate --output ${stale[0]!.split(" ")[0]}`,
    );
  }
  return ok(
    "cdi.specs",
    found === 0 ? `no NVIDIA CDI spec in ${c.cdiSpecDirs.join(", ")}` : `${found} spec(s) current`,
  );
}

function dockerChecks(i: DoctorInputs): Check[] {
  const text = read(i.dockerConfig);
  const out: Check[] = [];
  if (text === null) {
    out.push(
      warn(
        "engine.docker",
        `${i.dockerConfig} is absent: no gpuctl runtime registered (docker run --runtime nvidia: unknown or invalid runtime name)`,
        "gpuctl configure docker && systemctl reload docker",
      ),
    );
  } else {
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(text);
    } catch (e) {
      out.push(
        fail(
          "engine.docker",
          `${i.dockerConfig}: ${(e as Error).message}: dockerd will not start`,
          "make it strict JSON (gpuctl configure docker names the line)",
        ),
      );
      return out;
    }
    const runtimes = (doc.runtimes ?? {}) as Record<string, { path?: string }>;
    const ours = Object.entries(runtimes).filter(([, r]) =>
      /gpuctl|nvidia-container-runtime/.test(r.path ?? "")
    );
    const broken = ours.filter(([, r]) => !isExecutable(r.path ?? ""));
    const def = doc["default-runtime"] as string | undefined;
    if (def !== undefined && def !== "runc" && !(def in runtimes)) {
      out.push(
        fail(
          "engine.docker",
          `default-runtime "${def}" is not among runtimes: dockerd refuses to start`,
          `gpuctl configure docker --name ${def}`,
        ),
      );
    } else if (broken.length > 0) {
      out.push(
        fail(
          "engine.docker",
          broken.map(([n, r]) => `runtime "${n}" → ${r.path}, which does not exist`).join("; ") +
            " (docker run: OCI runtime create failed: no such file or directory)",
          `gpuctl install && gpuctl configure docker${
            broken[0]![0] === "nvidia" ? "" : ` --name ${broken[0]![0]}`
          }`,
        ),
      );
    } else if (ours.length === 0) {
      out.push(
        warn("engine.docker", `${i.dockerConfig} registers no gpuctl runtime`, "gpuctl configure docker"),
      );
    } else out.push(ok("engine.docker", ours.map(([n, r]) => `runtime "${n}" → ${r.path}`).join("; ")));
  }
  return out;
}

async function containerdCheck(i: DoctorInputs): Promise<Check> {
  const { parseToml, criPlugin, importedFiles } = await import("../engines/containerd.ts");
  const text = read(i.containerdConfig);
  if (text === null) {
    return warn(
      "engine.containerd",
      `${i.containerdConfig} is absent: no gpuctl runtime for Kubernetes`,
      "gpuctl configure containerd && systemctl restart containerd",
    );
  }
  try {
    const main = parseToml(text, i.containerdConfig);
    const version = main.version === undefined ? 1 : Number(main.version);
    const key = criPlugin(version);
    type T = Record<string, unknown>;
    const criOf = (d: T) => ((d.plugins as T | undefined)?.[key]) as T | undefined;
    let cri = criOf(main);
    for (const f of importedFiles((main.imports ?? []) as string[], i.containerdConfig)) {
      const t = read(f);
      if (t !== null) cri = criOf(parseToml(t, f)) ?? cri;
    }
    const runtimes = ((cri?.containerd as T | undefined)?.runtimes ?? {}) as Record<string, T>;
    const bin = (r: T) =>
      ((r.options as T | undefined)?.BinaryName as string | undefined) ??
        (r.runtime_engine as string | undefined);
    const ours = Object.entries(runtimes).filter(([, r]) =>
      /gpuctl|nvidia-container-runtime/.test(bin(r) ?? "")
    );
    if (ours.length === 0) {
      return warn(
        "engine.containerd",
        `${i.containerdConfig} registers no gpuctl runtime`,
        "gpuctl configure containerd && systemctl restart containerd",
      );
    }
    const [name, r] = ours[0]!;
    if (!isExecutable(bin(r)!)) {
      return fail(
        "engine.containerd",
        `runtime "${name}" → ${bin(r)}, which does not exist`,
        "gpuctl install && gpuctl configure containerd",
      );
    }
    const sys = (x: T | undefined) => (x?.options as T | undefined)?.SystemdCgroup === true;
    if (sys(runtimes.runc) && !sys(r)) {
      return fail(
        "engine.containerd",
        `runtime "${name}" lacks SystemdCgroup = true, which runc has: its pods would use cgroupfs while the kubelet uses systemd`,
        `gpuctl configure containerd${
          name === "nvidia" ? "" : ` --name ${name}`
        } && systemctl restart containerd`,
      );
    }
    return ok("engine.containerd", `runtime "${name}" → ${bin(r)}${sys(r) ? ", SystemdCgroup" : ""}`);
  } catch (e) {
    return fail("engine.containerd", (e as Error).message, "fix the file: containerd will not start with it");
  }
}

function crioCheck(i: DoctorInputs): Check {
  const text = read(i.crioDropIn);
  if (text === null) {
    return warn(
      "engine.crio",
      `${i.crioDropIn} is absent: no gpuctl runtime for CRI-O`,
      "gpuctl configure crio && systemctl restart crio",
    );
  }
  const path = /runtime_path\s*=\s*"([^"]+)"/.exec(text)?.[1];
  if (path === undefined || !isExecutable(path)) {
    return fail(
      "engine.crio",
      `${i.crioDropIn}: runtime_path ${path ?? "(none)"} does not exist`,
      "gpuctl install && gpuctl configure crio",
    );
  }
  return ok("engine.crio", `${i.crioDropIn}: runtime_path ${path}`);
}

/** Where Podman 4 reads CDI specs (it has no setting for them). */
export const PODMAN_CDI_DIRS = ["/etc/cdi", "/var/run/cdi"] as const;

/** The CDI fix every command, unit and README line gives: where `install --cdi` and the unit write it. */
export const CDI_FIX = `gpuctl cdi generate --output ${CDI_OUTPUT}`;

function podmanCheck(c: Config, podmanDirs: readonly string[]): Check {
  const nvidiaSpecs = (d: string) => {
    try {
      return [...Deno.readDirSync(d)].some((e) =>
        /\.(json|ya?ml)$/.test(e.name) && /nvidia|gpuctl/i.test(read(`${d}/${e.name}`) ?? "")
      );
    } catch {
      return false;
    }
  };
  if (podmanDirs.some(nvidiaSpecs)) {
    return ok("engine.podman", "reads the CDI specs: podman run --device nvidia.com/gpu=all");
  }
  // A spec where gpuctl reads it, but Podman does not.
  const elsewhere = c.cdiSpecDirs.filter((d) => !podmanDirs.includes(d) && nvidiaSpecs(d));
  return warn(
    "engine.podman",
    elsewhere.length > 0
      ? `the NVIDIA CDI spec is in ${elsewhere.join(", ")}, which Podman does not read (it reads ${
        podmanDirs.join(", ")
      }): podman run --device nvidia.com/gpu=… fails (unresolvable CDI devices)`
      : `no NVIDIA CDI spec in ${
        podmanDirs.join(", ")
      }: podman run --device nvidia.com/gpu=… fails (unresolvable CDI devices)`,
    CDI_FIX,
  );
}
