/**
 * CDI's edits as container edits: for engines that do not apply CDI themselves (Docker before 25, containerd 1.6),
 * where gpuctl resolves CDI names (\`cdi/resolve.ts\`) and makes the edits itself. The one converter.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
import type { CdiEdits, CdiHook } from "../cdi/spec.ts";
import type { ResolvedCdi } from "../cdi/resolve.ts";
import {
  type ContainerEdits,
  type InsideEdits,
  type MountEdit,
  type NodeEdit,
  procGpusFor,
  type SpecEdits,
} from "./edits.ts";
import { devMajor, devMinor } from "../devices/nodes.ts";
import { parseEditArgs } from "./hook_args.ts";

/** A CDI device node with its facts (from the spec, or read from the host node). */
export function cdiNodeEdit(n: NonNullable<CdiEdits["deviceNodes"]>[number]): NodeEdit {
  let { major, minor, fileMode, uid, gid } = n;
  const hostPath = n.hostPath ?? n.path;
  if (major === undefined || minor === undefined || fileMode === undefined) {
    const s = Deno.statSync(hostPath);
    if (!s.isCharDevice || s.rdev === null) throw new GpuctlError(hostPath, "is not a character device");
    major ??= devMajor(s.rdev);
    minor ??= devMinor(s.rdev);
    fileMode ??= (s.mode ?? 0o666) & 0o777;
    uid ??= s.uid ?? 0;
    gid ??= s.gid ?? 0;
  }
  return { path: n.path, hostPath, major, minor, fileMode: fileMode & 0o777, uid: uid ?? 0, gid: gid ?? 0 };
}

const ours = (h: CdiHook) => {
  const args = h.args ?? [];
  const i = args.indexOf("container-edits");
  return i >= 0 ? args.slice(i + 1) : null;
};

/**
 * Resolved CDI edits as container edits, for a prestart hook to make itself (Docker's `--gpus` with CDI names).
 * Only gpuctl's own hook can be run that way; a spec with another vendor's hook is refused.
 */
export function cdiToContainerEdits(r: ResolvedCdi, procRoot: string): ContainerEdits {
  const spec: SpecEdits = { deviceNodes: [], mounts: [], env: [] };
  const inside: InsideEdits = { symlinks: [], ldcache: [], procView: null, driverVersion: "" };
  const allGpus: { minor: number; name: string }[] = [];
  for (const e of r.edits) {
    spec.deviceNodes.push(...(e.deviceNodes ?? []).map(cdiNodeEdit));
    spec.mounts.push(...(e.mounts ?? []).map((m): MountEdit => {
      let dir = false;
      try {
        dir = Deno.statSync(m.hostPath).isDirectory;
      } catch { /* the mount fails later, naming it */ }
      return {
        hostPath: m.hostPath,
        containerPath: m.containerPath,
        options: (m.options ?? []).filter((o) => ["ro", "nosuid", "nodev", "noexec"].includes(o)),
        dir,
      };
    }));
    spec.env.push(...(e.env ?? []));
    for (const h of e.hooks ?? []) {
      const args = ours(h);
      if (h.hookName !== "createContainer" || args === null) {
        throw new GpuctlError(
          `CDI hook ${h.path}`,
          "is not gpuctl's; a prestart hook cannot run another tool's CDI hooks (use gpuctl-runtime or a CDI-aware engine)",
        );
      }
      const a = parseEditArgs(args);
      inside.symlinks.push(...a.symlinks);
      inside.ldcache.push(...a.ldcache);
      allGpus.push(...a.gpus);
      inside.driverVersion = a.driverVersion;
    }
  }
  const gpus = procGpusFor(
    allGpus.map((g) => ({ ...g, hostPath: `${procRoot}/driver/nvidia/gpus/${g.name}` })),
    spec.deviceNodes.map((n) => n.path),
  );
  inside.procView = { gpus, capabilities: null };
  return { spec, inside };
}
