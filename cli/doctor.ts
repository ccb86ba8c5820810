/**
 * `gpuctl doctor`: see `doctor/checks.ts`. Exit status 0 when all is well, 1 with failures, 3 with warnings only
 * (README's table of exit codes: 2 stays a usage error).
 * @module
 */
import { parse } from "./args.ts";
import type { Context } from "./context.ts";
import { UsageError } from "../errors/mod.ts";
import {
  type Check,
  type Engine,
  ENGINES,
  PODMAN_CDI_DIRS,
  runChecks,
  runtimeCheck,
} from "../doctor/checks.ts";
import { DOCKER_CONFIG } from "../engines/docker.ts";
import { CONTAINERD_CONFIG } from "../engines/containerd.ts";
import { CRIO_DROPIN } from "../engines/crio.ts";
import { defaultConfig } from "../config/schema.ts";
import { findRuntime, selfPath } from "../oci/runc_args.ts";

export const HELP =
  `Usage: gpuctl doctor [--json] [--engine docker,containerd,crio,podman|all|none] [--prefix DIR]
                     [--docker-config FILE] [--containerd-config FILE] [--crio-config FILE]
                     [--podman-cdi-dirs DIR,...]
       gpuctl doctor --explain ID

Walks the chain a GPU container needs, in order, one line per check (ok, warn, fail, skip), and for every
warning or failure the command that fixes it:
  driver.kernel       the kernel module is loaded (/proc/driver/nvidia/version)
  driver.libraries    the user-space libraries' version is the module's (no upgrade without reload)
  nvml                NVML loads and sees the GPUs (in a child process, with nvmlTimeout)
  devices.nodes       every NVIDIA node exists with the major /proc/devices gives (nvidia-uvm loaded)
  devices.char-links  /dev/char/<major>:<minor> links (systemd keeps device access across daemon-reload)
  cgroups             cgroup version, systemd, noCgroups
  runtime             the low-level runtime the shim execs; runc 1.1.14 or later (CVE-2024-45310)
  gpuctl.config       the configuration file parses
  gpuctl.plugins      the plugin files parse
  gpuctl.links        gpuctl-runtime and nvidia-container-runtime-hook in DIR (Docker's --gpus needs the hook)
  gpuctl.serve        whether gpuctl serve runs, and whether the installed fronts reach it (optional)
  cdi.specs           NVIDIA CDI specs match the driver and name files that exist
  engine.*            each engine's configuration names a gpuctl runtime that exists (containerd: with runc's
                      SystemdCgroup), Podman has a CDI spec where it reads them (--podman-cdi-dirs, default
                      /etc/cdi,/var/run/cdi: Podman 4 reads only those)
  plan                the whole plan for NVIDIA_VISIBLE_DEVICES=all, with its time
A check that depends on a failed one is skipped. Engines: those given, else those found on this host.
--explain ID prints what a check looks at, why, and which of gpuctl's paths (shim, hook, CDI) it concerns.
Exit status: 0 all is well, 1 failures, 3 warnings only. --json: {"status", "checks": [{"id", "status", "saw", "fix"}]}.
`;

/** Whether a program is installed: found as the shim finds a runtime (PATH, then the sbin directories). */
const onPath = (name: string) => findRuntime([name], Deno.env.get("PATH"), () => null) !== null;

export async function run(ctx: Context, args: string[]): Promise<number> {
  const { values } = await parse("doctor", args, {
    json: { type: "boolean" },
    engine: { type: "string" },
    prefix: { type: "string" },
    "docker-config": { type: "string" },
    "containerd-config": { type: "string" },
    "crio-config": { type: "string" },
    "podman-cdi-dirs": { type: "string" },
    explain: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    ctx.out(HELP);
    return 0;
  }
  if (values.explain !== undefined) {
    const { EXPLAIN } = await import("../doctor/explain.ts");
    const text = EXPLAIN[values.explain];
    if (text === undefined) {
      throw new UsageError(
        "doctor --explain",
        `unknown check ${JSON.stringify(values.explain)} (${Object.keys(EXPLAIN).join(", ")})`,
      );
    }
    ctx.out(`${values.explain}: ${text}\n`);
    return 0;
  }
  let configError: string | null = null;
  let config = defaultConfig();
  try {
    config = ctx.config;
  } catch (e) {
    configError = (e as Error).message;
  }
  const docker = values["docker-config"] ?? DOCKER_CONFIG;
  const containerd = values["containerd-config"] ?? CONTAINERD_CONFIG;
  const crio = values["crio-config"] ?? CRIO_DROPIN;
  let engines: Set<Engine>;
  const e = values.engine ?? "";
  if (e === "all") engines = new Set(ENGINES);
  else if (e === "none") engines = new Set();
  else if (e !== "") {
    const list = e.split(",");
    const bad = list.find((x) => !(ENGINES as readonly string[]).includes(x));
    if (bad !== undefined) {
      throw new UsageError("doctor --engine", `unknown engine "${bad}" (${ENGINES.join(", ")}, all, none)`);
    }
    engines = new Set(list as Engine[]);
  } else {
    const exists = (p: string) => {
      try {
        Deno.statSync(p);
        return true;
      } catch {
        return false;
      }
    };
    engines = new Set(
      ENGINES.filter((x) =>
        x === "docker"
          ? onPath("dockerd") || exists(docker)
          : x === "containerd"
          ? onPath("containerd") || exists(containerd)
          : x === "crio"
          ? onPath("crio") || exists(crio)
          : onPath("podman")
      ),
    );
  }
  // Where the fronts are: `gpuctl install`'s default, or the package's.
  const installed = ["/usr/local/bin", "/usr/bin"].find((d) => {
    try {
      return Deno.statSync(`${d}/gpuctl-runtime`).isFile;
    } catch {
      return false;
    }
  });
  const prefix = (values.prefix ?? installed ?? "/usr/local/bin").replace(/\/+$/, "");
  const { nvidiaFile, readConfigText } = await import("../config/read.ts");
  let configFile: string | null = null;
  let nvidiaConfig: { file: string; unmapped: { key: string; why: string }[] } | null = null;
  try {
    configFile = readConfigText(ctx.globals.configPath)?.file ?? null;
    const nv = configFile === null && configError === null ? nvidiaFile() : null;
    if (nv !== null) {
      const { fromNvidia } = await import("../config/nvidia.ts");
      nvidiaConfig = { file: nv, unmapped: fromNvidia(Deno.readTextFileSync(nv), nv).unmapped };
    }
  } catch { /* reported as configError */ }
  const checks = await runChecks({
    config,
    configFile,
    configError,
    nvidiaConfig,
    prefix,
    engines,
    dockerConfig: docker,
    containerdConfig: containerd,
    crioDropIn: crio,
    podmanCdiDirs: (values["podman-cdi-dirs"] ?? PODMAN_CDI_DIRS.join(",")).split(",").filter((d) =>
      d !== ""
    ),
    nvml: async () => {
      try {
        const { discoverIsolated } = await import("../devices/isolated.ts");
        const d = await discoverIsolated(config, "nvml", ctx.globals.configPath);
        return { gpus: d.inventory.devices.length, version: d.inventory.driver.nvmlVersion ?? "?" };
      } catch (err) {
        return { error: (err as Error).message };
      }
    },
    plan: async () => {
      try {
        const { preparePlan } = await import("../flows/prepare.ts");
        const { snapshotFacts } = await import("../snapshot/facts.ts");
        const { plan } = await preparePlan(config, { devices: { kind: "all" }, capabilities: undefined }, {
          facts: snapshotFacts(config, { configPath: ctx.globals.configPath, log: ctx.log }),
        });
        return {
          gpus: plan.gpus.length,
          migs: plan.migs.length,
          nodes: plan.deviceNodes.length,
          files: plan.mounts.length,
        };
      } catch (err) {
        return { error: (err as Error).message };
      }
    },
    runtime: () => runtimeCheck(config, () => findRuntime(config.runtimes, Deno.env.get("PATH"), selfPath)),
    plugins: async () => {
      const { pluginFiles } = await import("../plugins/registry.ts");
      const { parsePlugin } = await import("../plugins/declarative.ts");
      const errors: string[] = [];
      for (const n of pluginFiles(config.pluginsDir)) {
        try {
          parsePlugin(Deno.readTextFileSync(`${config.pluginsDir}/${n}`), `${config.pluginsDir}/${n}`);
        } catch (err) {
          errors.push((err as Error).message);
        }
      }
      return errors;
    },
  });
  const status = checks.some((c) => c.status === "fail")
    ? "fail"
    : checks.some((c) => c.status === "warn")
    ? "warn"
    : "ok";
  if (values.json) ctx.out(JSON.stringify({ status, checks }, null, 2) + "\n");
  else ctx.out(text(checks));
  return status === "fail" ? 1 : status === "warn" ? 3 : 0;
}

function text(checks: Check[]): string {
  const w = Math.max(...checks.map((c) => c.id.length));
  const lines = checks.map((c) =>
    `${c.status.padEnd(4)}  ${c.id.padEnd(w)}  ${c.saw}${c.fix ? `\n${"".padEnd(w + 6)}  fix: ${c.fix}` : ""}`
  );
  const fails = checks.filter((c) => c.status === "fail").length,
    warns = checks.filter((c) => c.status === "warn").length;
  lines.push(
    fails + warns === 0
      ? "doctor: all is well"
      : `doctor: ${fails} failure${fails === 1 ? "" : "s"}, ${warns} warning${warns === 1 ? "" : "s"}`,
  );
  return lines.join("\n") + "\n";
}
