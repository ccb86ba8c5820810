/**
 * The NVIDIA device nodes a host should have, from what the kernel says (`/proc/devices` for the majors,
 * `/proc/driver/nvidia/gpus/<bus>/information` for each GPU's minor, `/proc/driver/nvidia/params` for the mode and
 * owner), and the two repairs: `gpuctl system create-device-nodes` (what nvidia-modprobe does, without loading a
 * module) and `create-dev-char-symlinks` (`/dev/char/<major>:<minor>` links, which systemd needs to keep a
 * container's device access across `systemctl daemon-reload`). Both are idempotent and never replace anything.
 * @module
 */
import { ENOENT } from "../errors/errno.ts";
import { GpuctlError } from "../errors/mod.ts";
import {
  AT_EMPTY_PATH,
  check,
  libc,
  makedev,
  O_CLOEXEC,
  O_DIRECTORY,
  O_NOFOLLOW,
  O_PATH,
  readlinkat,
  statx,
  SyscallError,
} from "../ffi/libc.ts";

const AT_SYMLINK_NOFOLLOW = 0x100;

/**
 * A directory the repairs make things in, opened by descriptor and never through a link; refused unless root owns it
 * and no one else can write it (a user who could would swap a name for a link to root's files between two steps).
 * Made (mode 0755) when `make` and it is absent. Everything is then made relative to the descriptor.
 */
function safeDir(parent: number, name: string, shown: string, make: boolean): number {
  const open = () => libc().openat(parent, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
  let fd = open();
  if (fd < 0 && make) {
    libc().mkdirat(parent, name, 0o755);
    fd = open();
  }
  if (fd < 0) {
    throw new GpuctlError(
      shown,
      "is not a directory (a symbolic link, or absent): refusing to make device files there",
    );
  }
  const st = statx(fd, "", AT_EMPTY_PATH);
  if (st.uid !== 0 || (st.mode & 0o022) !== 0) {
    libc().close(fd);
    throw new GpuctlError(
      shown,
      `is ${
        st.uid !== 0 ? `owned by uid ${st.uid}` : "writable by others"
      }: refusing to make device files there (chown root, chmod go-w)`,
    );
  }
  return fd;
}

/** `devRoot` itself, by descriptor (see {@link safeDir}). */
function devRootFd(devRoot: string): number {
  return safeDir(-100, /* AT_FDCWD */ devRoot.replace(/\/+$/, "") || "/", devRoot, false);
}
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
  } catch { // absent
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
  } catch { // no such node
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
        const root = devRootFd(devRoot);
        const parts = n.path.replace(/^\/dev\//, "").split("/");
        const name = parts.pop()!;
        let dir = root;
        try {
          for (const p of parts) {
            const next = safeDir(
              dir,
              p,
              `${devRoot}/${parts.slice(0, parts.indexOf(p) + 1).join("/")}`,
              true,
            );
            if (dir !== root) libc().close(dir);
            dir = next;
          }
          const S_IFCHR = 0o020000;
          check(
            `mknod ${at}`,
            () => libc().mknodat(dir, name, S_IFCHR | facts.mode, makedev(n.major!, n.minor)),
          );
          check(`chown ${at}`, () => libc().fchownat(dir, name, facts.uid, facts.gid, AT_SYMLINK_NOFOLLOW));
          // mknod applies the umask: set the mode the driver asks for (the node just made, in a directory only
          // root can change).
          check(`chmod ${at}`, () => libc().fchmodat(dir, name, facts.mode, 0));
        } finally {
          if (dir !== root) libc().close(dir);
          libc().close(root);
        }
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
    } catch { // no such directory: nothing to link
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
  const nodes = nvidiaNodes(root);
  if (nodes.length === 0) return out;
  // Looked at (and made) through descriptors: a `char` that is a link to elsewhere is refused, never followed.
  let rootFd = -1, charFd = -1;
  try {
    if (!dryRun) {
      rootFd = devRootFd(devRoot);
      charFd = safeDir(rootFd, "char", `${root}/char`, true);
    } else {
      charFd = libc().open(`${root}/char`, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
    }
    for (const n of nodes) {
      const name = `${n.major}:${n.minor}`, link = `${root}/char/${name}`, target = `../${n.rel}`;
      let have: string | null = null;
      if (charFd >= 0) {
        try {
          have = readlinkat(charFd, name);
        } catch (e) {
          if (!(e instanceof SyscallError && e.errno === ENOENT)) {
            out.push({ path: link, done: "refused", why: "exists and is not a symlink" });
            continue;
          }
        }
      }
      if (have === target) out.push({ path: link, done: "present", why: `→ ${target}` });
      else if (have !== null) {
        out.push({ path: link, done: "refused", why: `points at ${have}, not ${target}` });
      } else {
        if (!dryRun) check(`symlink ${link}`, () => libc().symlinkat(target, charFd, name));
        out.push({ path: link, done: "created", why: `→ ${target}` });
      }
    }
  } finally {
    if (charFd >= 0) libc().close(charFd);
    if (rootFd >= 0) libc().close(rootFd);
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
