/**
 * CRI-O: a drop-in under `crio.conf.d` that gpuctl owns whole (CRI-O merges drop-ins key by key, so it holds only
 * the runtime and, asked, `default_runtime`). A file there that gpuctl did not write is never replaced.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
import { type FileChange, owned, OWNED_MARK, readIfExists } from "./files.ts";
import { parseToml, toToml } from "./containerd.ts";

export const CRIO_DROPIN = "/etc/crio/crio.conf.d/99-gpuctl.conf";

export interface CrioOptions {
  file: string;
  name: string;
  path: string;
  setDefault: boolean;
  remove: boolean;
}

export function crioText(o: CrioOptions): string {
  const runtime: Record<string, unknown> = {
    runtimes: { [o.name]: { runtime_path: o.path, runtime_type: "oci" } },
  };
  if (o.setDefault) runtime.default_runtime = o.name;
  return `${OWNED_MARK} crio: the runtime "${o.name}" (gpuctl-runtime). 'gpuctl configure crio --remove' removes it.\n${
    toToml({ crio: { runtime } })
  }`;
}

export function crioChanges(o: CrioOptions): FileChange[] {
  const before = readIfExists(o.file);
  if (before !== null && !owned(before)) {
    throw new GpuctlError(
      o.file,
      "exists and was not written by gpuctl (a full crio.conf?); gpuctl writes its own drop-in: pass --config /etc/crio/crio.conf.d/99-gpuctl.conf",
    );
  }
  if (o.remove) return before === null ? [] : [{ file: o.file, before, after: null }];
  return [{ file: o.file, before, after: crioText(o), check: (t) => void parseToml(t, o.file) }];
}
