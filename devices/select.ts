/**
 * `NVIDIA_VISIBLE_DEVICES`: its grammar, and the GPUs and MIG devices a value selects.
 *
 * - unset, empty, `void`: not a GPU container;
 * - `none`: the driver's files but no GPU;
 * - `all` (any case): every GPU and every MIG device;
 * - otherwise a comma list of: an index (`0`), a GPU UUID (`GPU-…`, any case), a PCI bus id
 *   (`0000:1b:00.0`, `00000000:1b:00.0`, `1b:00.0`), a MIG UUID (`MIG-…`, or the old `MIG-GPU-<uuid>/<gi>/<ci>`),
 *   or a `<gpu>:<mig>` index pair. Selecting a MIG device brings its parent GPU's node too.
 * @module
 */
import { GpuctlError, quote } from "../errors/mod.ts";
import { type Gpu, type Inventory, type MigDevice, normalizeBusId } from "./types.ts";
import { isCdiName } from "../cdi/names.ts";

export type DeviceRequest =
  | { kind: "void" }
  | { kind: "none" }
  | { kind: "all" }
  | { kind: "list"; ids: string[] };

/**
 * Parses a `NVIDIA_VISIBLE_DEVICES` value (`undefined`: unset) as NVIDIA does: items are trimmed and empty ones
 * dropped; nothing left, or a `void` anywhere, means no GPU container; otherwise the first `all` or `none` decides
 * (`none,0` is the driver without a GPU, `0,all` every GPU); else the list. `all` is taken in any case, as
 * NVIDIA's device parser does; `void` and `none` only as written.
 */
export function parseVisibleDevices(value: string | undefined): DeviceRequest {
  if (value === undefined) return { kind: "void" };
  const ids = value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (ids.length === 0 || ids.includes("void")) return { kind: "void" };
  for (const id of ids) {
    if (id.toLowerCase() === "all") return { kind: "all" };
    if (id === "none") return { kind: "none" };
  }
  return { kind: "list", ids };
}

/** A MIG device with its parent GPU. */
export interface SelectedMig {
  gpu: Gpu;
  mig: MigDevice;
}

/** What a request selects. `gpus` are whole GPUs; `migs` are MIG devices (their parents are not in `gpus`). */
export interface Selection {
  gpus: Gpu[];
  migs: SelectedMig[];
}

const BUS_ID = /^(?:[0-9a-f]{1,8}:)?[0-9a-f]{1,2}:[0-9a-f]{1,2}\.[0-7]$/i;

function describeHost(inv: Inventory): string {
  const gpus = inv.devices.length === 0 ? "no GPUs" : `GPUs ${inv.devices.map((g) => g.index).join(", ")}`;
  const migs = inv.devices.flatMap((g) => g.mig.devices.map((m) => `${g.index}:${m.index}`));
  return `this host has ${gpus}${migs.length > 0 ? ` and MIG devices ${migs.join(", ")}` : ""}`;
}

/** Resolves one id; throws naming it and what exists. */
function resolveId(id: string, inv: Inventory, source: string): Gpu | SelectedMig {
  const unknown = (why = describeHost(inv)): never => {
    throw new GpuctlError(source, `unknown device ${quote(id)} (${why})`);
  };
  const lower = id.toLowerCase();
  if (/^\d+$/.test(id)) return inv.devices.find((g) => g.index === Number(id)) ?? unknown();
  const pair = /^(\d+):(\d+)$/.exec(id);
  if (pair) {
    const gpu = inv.devices.find((g) => g.index === Number(pair[1])) ?? unknown();
    if (gpu.mig.enabled === null) return unknown(`GPU ${gpu.index}'s MIG devices are unknown without NVML`);
    if (!gpu.mig.enabled) return unknown(`GPU ${gpu.index} does not have MIG enabled; ${describeHost(inv)}`);
    const mig = gpu.mig.devices.find((m) => m.index === Number(pair[2])) ?? unknown();
    return { gpu, mig };
  }
  if (lower.startsWith("gpu-")) return inv.devices.find((g) => g.uuid.toLowerCase() === lower) ?? unknown();
  const oldMig = /^mig-(gpu-[^/]+)\/(\d+)\/(\d+)$/.exec(lower);
  if (oldMig) {
    const gpu = inv.devices.find((g) => g.uuid.toLowerCase() === oldMig[1]) ?? unknown();
    const mig = gpu.mig.devices.find((m) =>
      m.gpuInstance === Number(oldMig[2]) && m.computeInstance === Number(oldMig[3])
    );
    return mig ? { gpu, mig } : unknown();
  }
  if (lower.startsWith("mig-")) {
    for (const gpu of inv.devices) {
      const mig = gpu.mig.devices.find((m) => m.uuid.toLowerCase() === lower);
      if (mig) return { gpu, mig };
    }
    return unknown();
  }
  if (BUS_ID.test(id)) {
    const want = normalizeBusId(id);
    return inv.devices.find((g) => normalizeBusId(g.busId) === want) ?? unknown();
  }
  if (isCdiName(id)) {
    return unknown(
      "a CDI device name: give only CDI names, which are resolved against the CDI specs on this host",
    );
  }
  return unknown(`not an index, GPU-/MIG- UUID, PCI bus id or <gpu>:<mig> pair; ${describeHost(inv)}`);
}

/** The GPUs and MIG devices a request selects on this host. `source` names the input in errors. */
export function selectDevices(
  req: DeviceRequest,
  inv: Inventory,
  source = "NVIDIA_VISIBLE_DEVICES",
): Selection {
  switch (req.kind) {
    case "void":
    case "none":
      return { gpus: [], migs: [] };
    case "all":
      return {
        gpus: [...inv.devices],
        migs: inv.devices.flatMap((gpu) => gpu.mig.devices.map((mig) => ({ gpu, mig }))),
      };
    case "list": {
      const gpus = new Set<Gpu>();
      const migs = new Map<string, SelectedMig>();
      for (const id of req.ids) {
        const r = resolveId(id, inv, source);
        if ("gpu" in r) migs.set(r.mig.uuid, r);
        else gpus.add(r);
      }
      const order = (a: SelectedMig, b: SelectedMig) =>
        a.gpu.index - b.gpu.index || a.mig.index - b.mig.index;
      return { gpus: inv.devices.filter((g) => gpus.has(g)), migs: [...migs.values()].sort(order) };
    }
  }
}
