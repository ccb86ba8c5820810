/**
 * `gpuctl doctor`: see `doctor/checks.ts`. Exit status 0 when all is well, 1 with failures, 3 with warnings only
 * (README's table of exit codes: 2 stays a usage error).
 * @module
 */
import { parse } from "./args.ts";
import type { Context } from "./context.ts";
import { UsageError } from "../errors/mod.ts";
import { doctorStatus, doctorText, type Engine, ENGINES, runChecks } from "../doctor/checks.ts";
import { doctorInputs } from "../doctor/inputs.ts";
import { defaultConfig } from "../config/schema.ts";

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

export async function run(ctx: Context, args: string[]): Promise<number> {
  const { values } = parse("doctor", args, {
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
  const checks = await runChecks(
    await doctorInputs({
      config,
      configError,
      configPath: ctx.globals.configPath,
      log: ctx.log,
      ...engineOption(values.engine),
      ...(values.prefix !== undefined ? { prefix: values.prefix } : {}),
      ...(values["docker-config"] !== undefined ? { dockerConfig: values["docker-config"] } : {}),
      ...(values["containerd-config"] !== undefined ? { containerdConfig: values["containerd-config"] } : {}),
      ...(values["crio-config"] !== undefined ? { crioDropIn: values["crio-config"] } : {}),
      ...(values["podman-cdi-dirs"] !== undefined
        ? { podmanCdiDirs: values["podman-cdi-dirs"].split(",").filter((d) => d !== "") }
        : {}),
    }),
  );
  const status = doctorStatus(checks);
  ctx.out(values.json ? JSON.stringify({ status, checks }, null, 2) + "\n" : doctorText(checks));
  return status === "fail" ? 1 : status === "warn" ? 3 : 0;
}

/** `--engine`: a list, `all` or `none`; absent: the engines found on this host. */
function engineOption(e: string | undefined): { engines?: Engine[] } {
  if (e === undefined || e === "") return {};
  if (e === "all") return { engines: [...ENGINES] };
  if (e === "none") return { engines: [] };
  const list = e.split(",");
  const bad = list.find((x) => !(ENGINES as readonly string[]).includes(x));
  if (bad !== undefined) {
    throw new UsageError("doctor --engine", `unknown engine "${bad}" (${ENGINES.join(", ")}, all, none)`);
  }
  return { engines: list as Engine[] };
}
