/**
 * The NVIDIA device nodes a host should have, from what the kernel says (`/proc/devices` for the majors,
 * `/proc/driver/nvidia/gpus/<bus>/information` for each GPU's minor, `/proc/driver/nvidia/params` for the mode and
 * owner), and the two repairs: `gpuctl system create-device-nodes` (what nvidia-modprobe does, without loading a
 * module) and `create-dev-char-symlinks` (`/dev/char/<major>:<minor>` links, which systemd needs to keep a
 * container's device access across `systemctl daemon-reload`). Both are idempotent and never replace anything.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
import { check, libc, makedev } from "../ffi/libc.ts";
import { devMajor, devMinor, parseProcDevices } from "../devices/nodes.ts";
import { parseInformation } from "../devices/proc.ts";

export type NodeKind = "gpu" | "control" | "modeset" | "uvm";

export interface WantedNode {
  /** e.g. `/dev/nvidia0`. */
  path: string;
  kind: NodeKind;
  /** The kernel driver whose major it takes (`nvidia`, `nvidia-uvm`). */
  driver: string;
  /** `null` when that driver is not loaded (not in /proc/devices). */
  major: number | null;
  minor: number;
}

export interface NodeFacts {
  nodes: WantedNode[];
  /** From /proc/driver/nvidia/params (NVIDIA's defaults: 0666, root). */
  mode: number;
  uid: number;
  gid: number;
}

function read(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

/** The nodes the kernel's NVIDIA drivers call for. */
export function wantedNodes(procRoot: string): NodeFacts {
  const majors = parseProcDevices(read(`${procRoot}/devices`) ?? "");
  const params = new Map(
    (read(`${procRoot}/driver/nvidia/params`) ?? "").split("\n").map((l) => {
      const i = l.indexOf(":");
      return [l.slice(0, i).trim(), l.slice(i + 1).trim()] as [string, string];
    }),
  );
  const num = (k: string, d: number) => (/^\d+$/.test(params.get(k) ?? "") ? Number(params.get(k)) : d);
  const nvidia = majors["nvidia"] ?? majors["nvidia-frontend"] ?? null, uvm = majors["nvidia-uvm"] ?? null;
  const nodes: WantedNode[] = [];
  let gpus: string[] = [];
  try {
    gpus = [...Deno.readDirSync(`${procRoot}/driver/nvidia/gpus`)].map((e) => e.name).sort();
  } catch { /* no GPUs, or no driver */ }
  const minors = gpus.map((b) =>
    Number(
      parseInformation(read(`${procRoot}/driver/nvidia/gpus/${b}/information`) ?? "").get("Device Minor"),
    )
  )
    .filter((m) => Number.isInteger(m)).sort((a, b) => a - b);
  for (const m of minors) {
    nodes.push({ path: `/dev/nvidia${m}`, kind: "gpu", driver: "nvidia", major: nvidia, minor: m });
  }
  nodes.push({ path: "/dev/nvidiactl", kind: "control", driver: "nvidia", major: nvidia, minor: 255 });
  nodes.push({ path: "/dev/nvidia-modeset", kind: "modeset", driver: "nvidia", major: nvidia, minor: 254 });
  nodes.push({ path: "/dev/nvidia-uvm", kind: "uvm", driver: "nvidia-uvm", major: uvm, minor: 0 });
  nodes.push({ path: "/dev/nvidia-uvm-tools", kind: "uvm", driver: "nvidia-uvm", major: uvm, minor: 1 });
  return {
    nodes,
    mode: num("DeviceFileMode", 0o666),
    uid: num("DeviceFileUID", 0),
    gid: num("DeviceFileGID", 0),
  };
}

export type NodeState =
  | { state: "ok" }
  | { state: "absent" }
  | { state: "wrong"; saw: string }
  | { state: "unloaded" };

const hostPath = (devRoot: string, path: string) =>
  `${devRoot.replace(/\/+$/, "")}${path.slice("/dev".length)}`;

/** How `n` is on the host under `devRoot`. */
export function nodeState(devRoot: string, n: WantedNode): NodeState {
  let st: Deno.FileInfo;
  try {
    st = Deno.lstatSync(hostPath(devRoot, n.path));
  } catch {
    return n.major === null ? { state: "unloaded" } : { state: "absent" };
  }
  if (!st.isCharDevice) return { state: "wrong", saw: st.isSymlink ? "a symlink" : "not a character device" };
  const [ma, mi] = [devMajor(st.rdev ?? 0), devMinor(st.rdev ?? 0)];
  if (n.major === null) return { state: "wrong", saw: `${ma}:${mi}, but ${n.driver} is not loaded` };
  if (ma !== n.major || mi !== n.minor) return { state: "wrong", saw: `${ma}:${mi}` };
  return { state: "ok" };
}

export interface Step {
  path: string;
  done: "created" | "present" | "refused" | "skipped";
  why: string;
}

/** Creates the missing nodes of the kinds asked (all when none is); never replaces anything. */
export function createDeviceNodes(
  procRoot: string,
  devRoot: string,
  kinds: ReadonlySet<NodeKind>,
  dryRun: boolean,
): Step[] {
  const facts = wantedNodes(procRoot);
  const out: Step[] = [];
  for (const n of facts.nodes.filter((x) => kinds.size === 0 || kinds.has(x.kind))) {
    const s = nodeState(devRoot, n);
    const at = hostPath(devRoot, n.path);
    if (s.state === "ok") out.push({ path: at, done: "present", why: `${n.major}:${n.minor}` });
    else if (s.state === "unloaded") {
      out.push({
        path: at,
        done: "skipped",
        why: `${n.driver} is not loaded (modprobe ${n.driver.replace("-", "_")})`,
      });
    } else if (s.state === "wrong") {
      out.push({
        path: at,
        done: "refused",
        why: `exists as ${s.saw}, not ${n.major}:${n.minor}; remove it first if it is stale`,
      });
    } else {
      if (!dryRun) {
        Deno.mkdirSync(at.slice(0, at.lastIndexOf("/")), { recursive: true });
        const S_IFCHR = 0o020000;
        check(
          `mknod ${at}`,
          () => libc().mknodat(-100, at, S_IFCHR | facts.mode, makedev(n.major!, n.minor)),
        );
        check(
          `chown ${at}`,
          () => libc().fchownat(-100, at, facts.uid, facts.gid, 0x100 /* AT_SYMLINK_NOFOLLOW */),
        );
        // mknod applies the umask: set the mode the driver asks for.
        Deno.chmodSync(at, facts.mode);
      }
      out.push({ path: at, done: "created", why: `${n.major}:${n.minor} mode ${facts.mode.toString(8)}` });
    }
  }
  return out;
}

/** Every NVIDIA character node under `devRoot` (`nvidia*`, `nvidia-caps/*`), with its major and minor. */
export function nvidiaNodes(devRoot: string): { rel: string; major: number; minor: number }[] {
  const out: { rel: string; major: number; minor: number }[] = [];
  const scan = (dir: string, prefix: string) => {
    let entries: Deno.DirEntry[] = [];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch {
      return;
    }
    for (const e of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      if (!e.name.startsWith("nvidia")) continue;
      if (e.isDirectory && prefix === "" && e.name === "nvidia-caps") scan(`${dir}/${e.name}`, `${e.name}/`);
      else {
        try {
          const st = Deno.lstatSync(`${dir}/${e.name}`);
          if (st.isCharDevice) {
            out.push({
              rel: `${prefix}${e.name}`,
              major: devMajor(st.rdev ?? 0),
              minor: devMinor(st.rdev ?? 0),
            });
          }
        } catch { /* gone meanwhile */ }
      }
    }
  };
  scan(devRoot.replace(/\/+$/, ""), "");
  return out;
}

/** `char/<major>:<minor>` → `../<node>` for each NVIDIA node; never replaces an entry that says otherwise. */
export function createDevCharSymlinks(devRoot: string, dryRun: boolean): Step[] {
  const root = devRoot.replace(/\/+$/, "");
  const out: Step[] = [];
  for (const n of nvidiaNodes(root)) {
    const link = `${root}/char/${n.major}:${n.minor}`, target = `../${n.rel}`;
    let have: string | null = null;
    try {
      have = Deno.readLinkSync(link);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        out.push({ path: link, done: "refused", why: "exists and is not a symlink" });
        continue;
      }
    }
    if (have === target) out.push({ path: link, done: "present", why: `→ ${target}` });
    else if (have !== null) {
      out.push({ path: link, done: "refused", why: `points at ${have}, not ${target}` });
    } else {
      if (!dryRun) {
        Deno.mkdirSync(`${root}/char`, { recursive: true });
        Deno.symlinkSync(target, link);
      }
      out.push({ path: link, done: "created", why: `→ ${target}` });
    }
  }
  return out;
}

/** Which `/dev/char` links are missing or wrong, for the doctor (`skip`: nodes already reported as wrong). */
export function charLinkProblems(devRoot: string, skip: ReadonlySet<string> = new Set()): string[] {
  const root = devRoot.replace(/\/+$/, "");
  const wrong = new Set(
    skip.size === 0
      ? []
      : nvidiaNodes(root).filter((n) => skip.has(`/dev/${n.rel}`)).map((n) =>
        `${root}/char/${n.major}:${n.minor}`
      ),
  );
  return createDevCharSymlinks(devRoot, true).filter((s) => s.done !== "present" && !wrong.has(s.path)).map((
    s,
  ) => `${s.path.slice(s.path.lastIndexOf("/") + 1)} ${s.done === "created" ? "missing" : s.why}`);
}

export function assertRoot(what: string): void {
  if (libc().geteuid() !== 0) throw new GpuctlError(what, "must run as root (it creates device nodes)");
}
