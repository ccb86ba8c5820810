/**
 * The host's NVIDIA device nodes, as facts: character-device majors from `/proc/devices`, MIG capability minors
 * from `/proc/driver/nvidia-caps/mig-minors`, and each node's major, minor, mode and owner from stat.
 * Nothing is assumed: a node the host lacks is absent here, and the planner says so.
 * @module
 */
import type { Config } from "../config/config.ts";
import { normalizeBusId } from "./types.ts";

/** A device node as it is on the host. */
export interface HostNode {
  /** Its path in a container, e.g. `/dev/nvidia0`. */
  path: string;
  hostPath: string;
  major: number;
  minor: number;
  /** Permission bits. */
  mode: number;
  uid: number;
  gid: number;
}

export interface HostDevices {
  /** Character-device majors by driver name (`nvidia`, `nvidia-uvm`, `nvidia-caps`, …). */
  majors: Record<string, number>;
  /** MIG capability minors by key: `gpu<minor>/gi<G>/access`, `gpu<minor>/gi<G>/ci<C>/access`, `config`, `monitor`. */
  migMinors: Record<string, number>;
  /** Nodes by container path (`/dev/nvidiactl`). */
  nodes: Record<string, HostNode>;
  /** `<procRoot>/driver/nvidia/gpus/<bus>` directories by normalised bus id (`00000000:1b:00.0`). */
  gpuProcDirs: Record<string, { name: string; hostPath: string }>;
  /** `<procRoot>/driver/nvidia/capabilities`, when the host has it (MIG management). */
  capabilitiesDir: string | null;
}

/** Parses the character-device section of `/proc/devices`. */
export function parseProcDevices(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  let chars = false;
  for (const line of text.split("\n")) {
    if (line.startsWith("Character devices:")) chars = true;
    else if (line.startsWith("Block devices:")) chars = false;
    else if (chars) {
      const m = /^\s*(\d+)\s+(\S+)\s*$/.exec(line);
      if (m) out[m[2]!] ??= Number(m[1]);
    }
  }
  return out;
}

/** Parses `mig-minors` lines like `gpu0/gi1/ci0/access 12`. */
export function parseMigMinors(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const m = /^\s*(\S+)\s+(\d+)\s*$/.exec(line);
    if (m) out[m[1]!] = Number(m[2]);
  }
  return out;
}

/** Linux `major()`/`minor()` of a `dev_t`. */
export function devMajor(rdev: number): number {
  return Number((BigInt(rdev) >> 8n) & 0xfffn | ((BigInt(rdev) >> 32n) & ~0xfffn));
}
export function devMinor(rdev: number): number {
  return Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & ~0xffn));
}

function read(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch { // absent: no facts from it
    return "";
  }
}

/** Stats one node under `devRoot`; `null` if absent or not a character device. */
export function statNode(devRoot: string, containerPath: string): HostNode | null {
  const hostPath = `${devRoot.replace(/\/+$/, "")}${containerPath.replace(/^\/dev/, "")}`;
  try {
    const s = Deno.statSync(hostPath);
    if (!s.isCharDevice || s.rdev === null) return null;
    return {
      path: containerPath,
      hostPath,
      major: devMajor(s.rdev),
      minor: devMinor(s.rdev),
      mode: (s.mode ?? 0o666) & 0o7777,
      uid: s.uid ?? 0,
      gid: s.gid ?? 0,
    };
  } catch { // no such node
    return null;
  }
}

/** Whether a container path matches a node pattern (`*` in its last component matches any characters). */
export function matchesNode(pattern: string, path: string): boolean {
  if (!pattern.includes("*")) return pattern === path;
  const re = new RegExp(
    `^${pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join("[^/]*")}$`,
  );
  return re.test(path);
}

/** The container paths under `devRoot` that a pattern names (itself when it has no `*`). */
export function expandNodePattern(devRoot: string, pattern: string): string[] {
  if (!pattern.includes("*")) return [pattern];
  const dir = pattern.slice(0, pattern.lastIndexOf("/"));
  try {
    return [...Deno.readDirSync(`${devRoot.replace(/\/+$/, "")}${dir.replace(/^\/dev/, "")}`)]
      .map((e) => `${dir}/${e.name}`).filter((p) => matchesNode(pattern, p)).sort();
  } catch { // no such directory: no nodes in it
    return [];
  }
}

/**
 * Reads the NVIDIA nodes under `devRoot`, and `extra` container paths or patterns (from plugins, IMEX channels).
 */
export function readHostDevices(config: Config, extra: readonly string[] = []): HostDevices {
  const nodes: Record<string, HostNode> = {};
  const add = (p: string) => {
    const n = statNode(config.devRoot, p);
    if (n) nodes[p] = n;
  };
  for (const dir of ["", "/nvidia-caps"]) {
    let names: string[] = [];
    try {
      names = [...Deno.readDirSync(`${config.devRoot}${dir}`)].map((e) => e.name).filter((n) =>
        n.startsWith("nvidia")
      );
    } catch { /* no such dir */ }
    for (const n of names) add(`/dev${dir}/${n}`);
  }
  for (const p of extra) for (const q of expandNodePattern(config.devRoot, p)) add(q);
  const gpuProcDirs: HostDevices["gpuProcDirs"] = {};
  const gpus = `${config.procRoot}/driver/nvidia/gpus`;
  try {
    for (const e of Deno.readDirSync(gpus)) {
      const id = normalizeBusId(e.name);
      if (id !== null && e.isDirectory) gpuProcDirs[id] = { name: e.name, hostPath: `${gpus}/${e.name}` };
    }
  } catch { /* no kernel driver */ }
  let capabilitiesDir: string | null = `${config.procRoot}/driver/nvidia/capabilities`;
  try {
    if (!Deno.statSync(capabilitiesDir).isDirectory) capabilitiesDir = null;
  } catch { // no capabilities directory: no MIG management view
    capabilitiesDir = null;
  }
  return {
    gpuProcDirs,
    capabilitiesDir,
    majors: parseProcDevices(read(`${config.procRoot}/devices`)),
    migMinors: parseMigMinors(read(`${config.procRoot}/driver/nvidia-caps/mig-minors`)),
    nodes,
  };
}
