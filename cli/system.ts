/**
 * `gpuctl system create-device-nodes | create-dev-char-symlinks`: the host repairs `gpuctl doctor` points to (see
 * `system/nodes.ts`).
 * @module
 */
import { nvidiaFlags, parse } from "./args.ts";
import type { Context } from "./context.ts";
import { GpuctlError, UsageError } from "../errors/mod.ts";
import {
  assertRoot,
  createDevCharSymlinks,
  createDeviceNodes,
  type NodeKind,
  type Step,
} from "../system/nodes.ts";

export const HELP =
  `Usage: gpuctl system create-device-nodes [--gpus] [--control] [--uvm] [--modeset] [--load-kernel-modules]
                                          [--dev-root DIR] [--dry-run]
       gpuctl system create-dev-char-symlinks [--dev-root DIR] [--dry-run]

create-device-nodes      creates the NVIDIA device nodes the kernel's drivers call for and the host lacks, with
                         mknod: majors from /proc/devices, GPU minors from /proc/driver/nvidia/gpus, mode and
                         owner from /proc/driver/nvidia/params (what nvidia-modprobe does, without loading a
                         module). The kinds given, or all: --gpus (nvidiaN), --control (nvidiactl), --uvm
                         (nvidia-uvm, nvidia-uvm-tools), --modeset (nvidia-modeset).
create-dev-char-symlinks creates /dev/char/<major>:<minor> → ../nvidia… for every NVIDIA node, which systemd needs
                         to keep a container's device access across 'systemctl daemon-reload'.
Both change nothing that is already right, and never replace anything else (they say so and exit 1).
devRoot (or --dev-root) and procRoot come from the configuration. --load-kernel-modules first loads nvidia,
nvidia-uvm and nvidia-modeset with modprobe. NVIDIA's --control-devices means --control --uvm --modeset.
`;

/** Loads the NVIDIA kernel modules with the host's modprobe (nvidia-ctk's --load-kernel-modules). */
async function loadModules(ctx: Context): Promise<void> {
  const modprobe = ["/usr/sbin/modprobe", "/sbin/modprobe"].find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch { // not there
      return false;
    }
  });
  if (modprobe === undefined) {
    throw new GpuctlError("system --load-kernel-modules", "modprobe is not in /usr/sbin or /sbin");
  }
  for (const m of ["nvidia", "nvidia-uvm", "nvidia-modeset"]) {
    const o = await new Deno.Command(modprobe, {
      args: [m],
      stdout: "null",
      stderr: "piped",
      env: {},
      clearEnv: true,
    })
      .output();
    if (!o.success) {
      ctx.warn(`modprobe ${m}: ${new TextDecoder().decode(o.stderr).trim() || `exit ${o.code}`}`);
    }
  }
}

function report(ctx: Context, steps: Step[], dryRun: boolean): number {
  for (const s of steps) {
    const done = dryRun && s.done === "created" ? "would create" : s.done;
    ctx.out(`${done.padEnd(12)} ${s.path}  ${s.why}\n`);
  }
  return steps.some((s) => s.done === "refused") ? 1 : 0;
}

export async function run(ctx: Context, args: string[]): Promise<number> {
  const { values, positionals } = parse(
    "system",
    nvidiaFlags(args, {}, ["dry-run", "control-devices", "load-kernel-modules"]),
    {
      "control-devices": { type: "boolean" },
      "load-kernel-modules": { type: "boolean" },
      "dev-root": { type: "string" },
      gpus: { type: "boolean" },
      control: { type: "boolean" },
      uvm: { type: "boolean" },
      modeset: { type: "boolean" },
      "dry-run": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    true,
  );
  if (values.help) {
    ctx.out(HELP);
    return 0;
  }
  const dryRun = values["dry-run"] ?? false;
  const sub = positionals[0];
  if (positionals.length !== 1 || (sub !== "create-device-nodes" && sub !== "create-dev-char-symlinks")) {
    throw new UsageError(
      "system",
      "name one of create-device-nodes, create-dev-char-symlinks (see 'gpuctl system --help')",
    );
  }
  if (!dryRun) assertRoot(`system ${sub}`);
  const devRoot = values["dev-root"] ?? ctx.config.devRoot;
  if (values["load-kernel-modules"] && !dryRun) await loadModules(ctx);
  if (sub === "create-dev-char-symlinks") {
    return report(ctx, createDevCharSymlinks(devRoot, dryRun), dryRun);
  }
  const kinds = new Set<NodeKind>();
  if (values.gpus) kinds.add("gpu");
  if (values.control || values["control-devices"]) kinds.add("control");
  if (values.uvm || values["control-devices"]) kinds.add("uvm");
  if (values.modeset || values["control-devices"]) kinds.add("modeset");
  return report(ctx, createDeviceNodes(ctx.config.procRoot, devRoot, kinds, dryRun), dryRun);
}
