/**
 * The parts of the OCI runtime spec and state gpuctl reads, validated from untrusted JSON: config.json and the
 * state on a hook's stdin come from whoever created the container.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";

/** The state runc passes to a hook on stdin. */
export interface OciState {
  id: string;
  pid: number;
  bundle: string;
}

export interface OciMount {
  destination: string;
  source?: string;
  type?: string;
  options?: string[];
}

/** The subset of config.json gpuctl uses; everything else is kept untouched when it edits the file. */
export interface OciSpec {
  process?: { env?: string[]; capabilities?: { bounding?: string[] } };
  root?: { path?: string; readonly?: boolean };
  mounts?: OciMount[];
  linux?: Record<string, unknown>;
  hooks?: Record<string, unknown>;
  [key: string]: unknown;
}

/** The most bytes gpuctl reads of a config.json or a state document. */
export const MAX_SPEC_BYTES = 16 << 20;

const isObj = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Parses the state JSON a hook reads from stdin. */
export function parseState(text: string): OciState {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new GpuctlError("container state on stdin", `is not JSON (${(e as Error).message})`);
  }
  if (!isObj(v)) throw new GpuctlError("container state on stdin", "is not a JSON object");
  const pid = v.pid, bundle = v.bundle ?? v.bundlePath, id = v.id;
  if (typeof pid !== "number" || !Number.isInteger(pid) || pid <= 0) {
    throw new GpuctlError("container state on stdin", `has no valid "pid" (got ${JSON.stringify(pid)})`);
  }
  if (typeof bundle !== "string" || !bundle.startsWith("/") || bundle.includes("\0")) {
    throw new GpuctlError(
      "container state on stdin",
      `has no absolute "bundle" path (got ${JSON.stringify(bundle)})`,
    );
  }
  return { id: typeof id === "string" ? id : "", pid, bundle };
}

/** Parses config.json text, checking the types of the fields gpuctl reads. */
export function parseSpec(text: string, file: string): OciSpec {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new GpuctlError(file, `is not valid JSON (${(e as Error).message})`);
  }
  if (!isObj(v)) throw new GpuctlError(file, "is not a JSON object");
  const bad = (what: string): never => {
    throw new GpuctlError(file, `${what}`);
  };
  if (v.process !== undefined) {
    if (!isObj(v.process)) bad('"process" is not an object');
    const p = v.process as Record<string, unknown>;
    if (p.env !== undefined && (!Array.isArray(p.env) || !p.env.every((e) => typeof e === "string"))) {
      bad('"process.env" is not a list of strings');
    }
    if (p.capabilities !== undefined) {
      if (!isObj(p.capabilities)) bad('"process.capabilities" is not an object');
      const b = (p.capabilities as Record<string, unknown>).bounding;
      if (b !== undefined && (!Array.isArray(b) || !b.every((c) => typeof c === "string"))) {
        bad('"process.capabilities.bounding" is not a list of strings');
      }
    }
  }
  if (
    v.root !== undefined && (!isObj(v.root) || (v.root.path !== undefined && typeof v.root.path !== "string"))
  ) {
    bad('"root.path" is not a string');
  }
  if (v.mounts !== undefined) {
    if (!Array.isArray(v.mounts)) bad('"mounts" is not a list');
    for (const m of v.mounts as unknown[]) {
      if (!isObj(m) || typeof m.destination !== "string") bad('a mount has no "destination" string');
      const mm = m as Record<string, unknown>;
      if (mm.source !== undefined && typeof mm.source !== "string") bad('a mount "source" is not a string');
    }
  }
  if (v.linux !== undefined && !isObj(v.linux)) bad('"linux" is not an object');
  if (v.hooks !== undefined && !isObj(v.hooks)) bad('"hooks" is not an object');
  return v as OciSpec;
}

/** Reads a file of at most `max` bytes (config.json, state): a larger one is refused, not truncated. */
export function readLimited(path: string, max = MAX_SPEC_BYTES): string {
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(path, { read: true });
  } catch (e) {
    throw new GpuctlError(path, `cannot be opened: ${(e as Error).message}`);
  }
  try {
    const st = f.statSync();
    if (!st.isFile) throw new GpuctlError(path, "is not a regular file");
    if (st.size > max) throw new GpuctlError(path, `is larger than ${max} bytes`);
    const buf = new Uint8Array(st.size);
    let n = 0;
    while (n < buf.length) {
      const r = f.readSync(buf.subarray(n));
      if (r === null) break;
      n += r;
    }
    return new TextDecoder().decode(buf.subarray(0, n));
  } finally {
    f.close();
  }
}

/** The container's environment as a map; a later duplicate wins, as with `docker run -e`. */
export function envMap(spec: OciSpec): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of spec.process?.env ?? []) {
    const i = e.indexOf("=");
    if (i > 0) m.set(e.slice(0, i), e.slice(i + 1));
  }
  return m;
}

/** The absolute rootfs path of a bundle's spec. */
export function rootfsPath(spec: OciSpec, bundle: string): string {
  const p = spec.root?.path ?? "rootfs";
  return p.startsWith("/") ? p : `${bundle.replace(/\/+$/, "")}/${p}`;
}
