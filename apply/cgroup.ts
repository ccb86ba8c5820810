/**
 * Device cgroup rules for the nodes gpuctl adds, so the container may open them.
 * v1: `c MAJ:MIN rwm` lines appended to the container cgroup's `devices.allow`.
 * v2: see `apply/bpf.ts` (an eBPF device program attached to the container's cgroup).
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";

export interface DeviceRule {
  major: number;
  minor: number;
}

export type CgroupInfo = { version: 1; dir: string } | { version: 2; dir: string };

/** Parses `/proc/<pid>/mountinfo` lines: [mount point, root, fstype, super options]. */
function mounts(mountinfo: string): { point: string; root: string; fstype: string; opts: string[] }[] {
  const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
  return mountinfo.split("\n").filter((l) => l.trim() !== "").map((l) => {
    const [pre, post = ""] = l.split(" - ");
    const f = pre!.split(" ");
    const p = post.split(" ");
    return {
      point: unescape(f[4] ?? ""),
      root: unescape(f[3] ?? ""),
      fstype: p[0] ?? "",
      opts: (p[2] ?? "").split(","),
    };
  });
}

/** Where a cgroup path (as /proc/<pid>/cgroup gives it) lies under a cgroup mount of this host. */
function underMount(m: { point: string; root: string }, path: string): string {
  const rel = m.root === "/" ? path : path.startsWith(m.root) ? path.slice(m.root.length) : path;
  return `${m.point}${rel}`;
}

/** Finds the container's device cgroup directory (on this host's view) from its /proc entries. */
export function findDeviceCgroup(pid: number, procfs = "/proc"): CgroupInfo {
  const cg = Deno.readTextFileSync(`${procfs}/${pid}/cgroup`);
  const mi = mounts(Deno.readTextFileSync(`${procfs}/self/mountinfo`));
  const lines = cg.split("\n").filter((l) => l !== "").map((l) => {
    const m = /^(\d+):([^:]*):(.*)$/.exec(l);
    return m ? { id: m[1]!, controllers: m[2]!.split(","), path: m[3]! } : null;
  }).filter((x) => x !== null);
  const v1 = lines.find((l) => l.controllers.includes("devices"));
  if (v1) {
    const m = mi.find((x) => x.fstype === "cgroup" && x.opts.includes("devices"));
    if (!m) throw new GpuctlError("device cgroup", "the devices controller is not mounted on this host");
    return { version: 1, dir: underMount(m, v1.path) };
  }
  const v2 = lines.find((l) => l.id === "0" && l.controllers.length === 1 && l.controllers[0] === "");
  if (v2) {
    const m = mi.find((x) => x.fstype === "cgroup2");
    if (!m) throw new GpuctlError("device cgroup", "no cgroup2 mount on this host");
    return { version: 2, dir: underMount(m, v2.path) };
  }
  throw new GpuctlError(
    `${procfs}/${pid}/cgroup`,
    "shows neither a v1 devices controller nor a v2 hierarchy",
  );
}

/** Appends allow rules to a v1 device cgroup. */
export function allowV1(dir: string, rules: readonly DeviceRule[]): void {
  for (const r of rules) {
    try {
      Deno.writeTextFileSync(`${dir}/devices.allow`, `c ${r.major}:${r.minor} rwm`);
    } catch (e) {
      throw new GpuctlError(
        `${dir}/devices.allow`,
        `cannot allow c ${r.major}:${r.minor}: ${(e as Error).message}`,
        1,
        { cause: e },
      );
    }
  }
}
