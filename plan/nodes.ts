/**
 * The device nodes of a plan, each with its typed role: the control node, the capabilities' nodes, the selected
 * GPUs and MIG devices, IMEX channels and MIG management. A node the host lacks is made from its driver's major
 * (from /proc/devices) when there is one; the first role given to a path wins.
 * @module
 */
import type { HostDevices, HostNode } from "../devices/nodes.ts";
import type { Selection } from "../devices/select.ts";
import type { Registry, ResolvedCapabilities } from "../plugins/registry.ts";
import { GpuctlError } from "../errors/mod.ts";
import { matchesNode } from "../devices/nodes.ts";

/** Why a node is in a container: what CDI generation groups devices by, and what `list --json` says. */
export type NodeRole =
  | { kind: "control" }
  | { kind: "capability"; name: string }
  | { kind: "gpu"; index: number }
  | { kind: "mig"; gpu: number; index: number }
  | { kind: "imex"; channel: number }
  | { kind: "mig-management"; of: "config" | "monitor" | number };

/** The role in words: `control`, `gpu <index>`, `mig <g>:<m>`, a capability's name, … */
export function roleText(r: NodeRole): string {
  switch (r.kind) {
    case "control":
      return "control";
    case "capability":
      return r.name;
    case "gpu":
      return `gpu ${r.index}`;
    case "mig":
      return `mig ${r.gpu}:${r.index}`;
    case "imex":
      return `imex ${r.channel}`;
    case "mig-management":
      return typeof r.of === "number" ? `mig management ${r.of}` : `mig ${r.of}`;
  }
}

/** A device node to create in the container (`type` is always `c`). */
export interface PlannedNode {
  path: string;
  /** The host node it mirrors; `null` when the host has none and it is made from the major/minor. */
  hostPath: string | null;
  type: "c";
  major: number;
  minor: number;
  fileMode: number;
  uid: number;
  gid: number;
  role: NodeRole;
}

/** Where IMEX channel nodes are. */
export const IMEX_DIR = "/dev/nvidia-caps-imex-channels";

interface GpuRef {
  index: number;
  minor: number;
}

/** The nodes chosen so far, in the order they were added. */
class NodeBook {
  readonly nodes = new Map<string, PlannedNode>();
  constructor(readonly host: HostDevices, readonly warnings: string[]) {}

  addHost(n: HostNode, role: NodeRole): void {
    if (this.nodes.has(n.path)) return;
    this.nodes.set(n.path, {
      path: n.path,
      hostPath: n.hostPath,
      type: "c",
      major: n.major,
      minor: n.minor,
      fileMode: n.mode,
      uid: n.uid,
      gid: n.gid,
      role,
    });
  }

  /**
   * The host's node at `path`; else one made from its driver's `major`; an error (`subject`, `why`) when there is
   * neither.
   */
  hostOrMajor(
    path: string,
    made: { major: number | undefined; minor: number; fileMode: number },
    role: NodeRole,
    error: { subject: string; why: string },
  ): void {
    const h = this.host.nodes[path];
    if (h) return this.addHost(h, role);
    if (made.major === undefined) throw new GpuctlError(error.subject, error.why);
    if (this.nodes.has(path)) return;
    const { major, minor, fileMode } = made;
    this.nodes.set(path, { path, hostPath: null, type: "c", major, minor, fileMode, uid: 0, gid: 0, role });
  }

  /** A GPU's node, made from the nvidia major (with a warning) when the host lacks it. */
  gpu(g: GpuRef, role: NodeRole): void {
    const path = `/dev/nvidia${g.minor}`;
    const major = this.host.majors["nvidia"] ?? this.host.majors["nvidia-frontend"];
    if (!this.host.nodes[path] && major !== undefined) {
      this.warnings.push(
        `${path} is missing on the host; it will be created from major ${major}, minor ${g.minor}`,
      );
    }
    this.hostOrMajor(path, { major, minor: g.minor, fileMode: 0o666 }, role, {
      subject: `GPU ${g.index}`,
      why: `${path} is missing and /proc/devices has no nvidia major to create it from`,
    });
  }

  /** A MIG capability node (read-only, as the driver makes them). */
  migCap(minor: number, role: NodeRole, subject: string): void {
    const path = `/dev/nvidia-caps/nvidia-cap${minor}`;
    this.hostOrMajor(path, { major: this.host.majors["nvidia-caps"], minor, fileMode: 0o444 }, role, {
      subject,
      why: `${path} is missing and /proc/devices has no nvidia-caps major`,
    });
  }
}

/** What the node steps read. */
export interface NodeInput {
  capabilities: ResolvedCapabilities;
  selection: Selection;
  registry: Registry;
  host: HostDevices;
  /** IMEX channels asked for (`NVIDIA_IMEX_CHANNELS`). */
  imexChannels?: readonly number[];
  /** MIG management asked for by a privileged container (`NVIDIA_MIG_CONFIG_DEVICES`/`…_MONITOR_DEVICES=all`). */
  mig?: { config: boolean; monitor: boolean };
}

/**
 * The plan's nodes, in this order: control, capability nodes, GPUs, MIG devices, IMEX channels, MIG management.
 * `migManaged` are the selected MIG-enabled GPUs a privileged container manages.
 */
export function planNodes(
  input: NodeInput,
  migManaged: readonly GpuRef[],
  warnings: string[],
): PlannedNode[] {
  const book = new NodeBook(input.host, warnings);
  controlNode(book);
  capabilityNodes(book, input, warnings);
  for (const g of input.selection.gpus) book.gpu(g, { kind: "gpu", index: g.index });
  migNodes(book, input.selection);
  imexNodes(book, input.imexChannels ?? []);
  migManagementNodes(book, input, migManaged);
  return [...book.nodes.values()];
}

/** Every GPU container needs the control node. */
function controlNode(book: NodeBook): void {
  const ctl = book.host.nodes["/dev/nvidiactl"];
  if (ctl === undefined) {
    throw new GpuctlError(
      "/dev/nvidiactl",
      "the host has no such character device (is the nvidia kernel module loaded?)",
    );
  }
  book.addHost(ctl, { kind: "control" });
}

/**
 * Capability nodes (uvm for compute, modeset for display, plugins' own), checked only now that the capability is
 * asked for. A missing one is a warning, or an error for a capability that declares nothing but nodes.
 */
function capabilityNodes(book: NodeBook, input: NodeInput, warnings: string[]): void {
  const hostPaths = Object.keys(input.host.nodes);
  for (const name of input.capabilities.effective) {
    const cap = input.registry.get(name);
    const patterns = (cap?.deviceNodes ?? []).map((n) => (n.startsWith("/") ? n : `/dev/${n}`));
    const missing: string[] = [];
    for (const pattern of patterns) {
      const hits = hostPaths.filter((p) => matchesNode(pattern, p)).sort();
      if (hits.length === 0) missing.push(pattern);
      for (const p of hits) book.addHost(input.host.nodes[p]!, { kind: "capability", name });
    }
    if (missing.length === 0) continue;
    const onlyNodes = !cap?.libraries?.length && !cap?.binaries?.length && !cap?.files?.length &&
      !cap?.ipcs?.length;
    if (onlyNodes && missing.length === patterns.length) {
      throw new GpuctlError(
        `capability ${name}`,
        `this host has none of its device nodes (${missing.join(", ")}); is its kernel module loaded?`,
      );
    }
    for (const m of missing) {
      warnings.push(
        `${m} is missing on the host: the ${name} capability may not work (is its kernel module loaded?)`,
      );
    }
  }
}

/** MIG devices: the parent's node and the GPU- and compute-instance capability nodes. */
function migNodes(book: NodeBook, selection: Selection): void {
  for (const { gpu, mig } of selection.migs) {
    const role: NodeRole = { kind: "mig", gpu: gpu.index, index: mig.index };
    const subject = `MIG device ${gpu.index}:${mig.index}`;
    if (!book.nodes.has(`/dev/nvidia${gpu.minor}`)) book.gpu(gpu, role);
    const gi = `gpu${gpu.minor}/gi${mig.gpuInstance}`;
    for (const key of [`${gi}/access`, `${gi}/ci${mig.computeInstance}/access`]) {
      const minor = book.host.migMinors[key];
      if (minor === undefined) {
        throw new GpuctlError(
          subject,
          `no capability minor for ${key} in /proc/driver/nvidia-caps/mig-minors`,
        );
      }
      book.migCap(minor, role, subject);
    }
  }
}

/** IMEX channels: the host's node, or one made from the channel driver's major. */
function imexNodes(book: NodeBook, channels: readonly number[]): void {
  const major = book.host.majors["nvidia-caps-imex-channels"];
  for (const ch of channels) {
    book.hostOrMajor(`${IMEX_DIR}/channel${ch}`, { major, minor: ch, fileMode: 0o666 }, {
      kind: "imex",
      channel: ch,
    }, {
      subject: "NVIDIA_IMEX_CHANNELS",
      why:
        `channel ${ch} was asked for, but this host has no IMEX channels (no nvidia-caps-imex-channels in /proc/devices; is the IMEX driver set up?)`,
    });
  }
}

/**
 * MIG management (privileged containers only, checked by the request): the config or monitor capability node and
 * every MIG capability node of each managed GPU.
 */
function migManagementNodes(book: NodeBook, input: NodeInput, managed: readonly GpuRef[]): void {
  if (managed.length === 0) return;
  for (const  of of["config", "monitor"] as const) {
    if (!input.mig?.[of]) continue;
    const minor = book.host.migMinors[of];
    if (minor === undefined) {
      throw new GpuctlError(`NVIDIA_MIG_${of.toUpperCase()}_DEVICES`, `mig-minors has no "${of}" entry`);
    }
    book.migCap(minor, { kind: "mig-management", of }, "MIG management");
  }
  for (const g of managed) {
    for (const [key, minor] of Object.entries(book.host.migMinors)) {
      if (key.startsWith(`gpu${g.minor}/`)) {
        book.migCap(minor, { kind: "mig-management", of: g.index }, "MIG management");
      }
    }
  }
}
