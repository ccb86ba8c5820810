/**
 * Declarative capability plugins: JSONC files in `pluginsDir` that add a capability or extend one.
 *
 * ```jsonc
 * // /etc/gpuctl/plugins.d/infiniband.jsonc
 * {
 *   "capability": "infiniband",          // new, or the name of one to extend (e.g. "compute")
 *   "description": "RDMA verbs for GPUDirect",
 *   "implies": ["compute"],
 *   "libraries": ["libibverbs.so"],      // SONAME prefixes in the driver root's ld.so.cache
 *   "anyLibraryVersion": true,           // not NVIDIA driver libraries: accept any version
 *   "binaries": ["ibv_devinfo"],
 *   "files": ["/etc/libibverbs.d/mlx5.driver", {"path": "/opt/x.conf", "containerPath": "/etc/x.conf"}],
 *   "deviceNodes": ["/dev/infiniband/uverbs0"],
 *   "ipcs": [{"path": "/run/foo.sock", "kind": "socket"}],
 *   "env": {"NCCL_IB_DISABLE": "0"}
 * }
 * ```
 *
 * Validation errors give file, line and column. Files are paths under the driver root (never `..`); device
 * nodes are checked when a container asks for the capability, not when the file is read: a plugin for hardware
 * a host lacks never stands in the way of containers that do not ask for it.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
import { type JsoncDoc, type Node, parseJsoncObject, properties } from "../config/jsonc.ts";
import type { Capability, FileSpec, IpcSpec } from "./types.ts";
import { pluginFiles } from "./registry.ts";

const NAME = /^[a-z][a-z0-9_-]{0,31}$/;
const FORBIDDEN_ENV = /^(LD_|GCONV_PATH$|MALLOC_|NODE_OPTIONS$|DENO_|BUN_)/;

function isCleanAbsolute(p: string): boolean {
  return p.startsWith("/") && !p.split("/").includes("..") && !p.includes("\0");
}

/** A device node path under /dev, or a family of them with `*` in the last component only. */
function isDevicePattern(p: string): boolean {
  return p.startsWith("/dev/") && isCleanAbsolute(p) && !p.slice(0, p.lastIndexOf("/")).includes("*");
}

/** A plugin being read: the document, and the capability so far. */
interface Reading {
  doc: JsoncDoc;
  cap: Record<string, unknown>;
  name?: string;
}

/** A list of strings each `ok`, or an error naming the key and what it must be. */
function strings(r: Reading, n: Node, key: string, ok: (s: string) => boolean, must: string): string[] {
  const v = r.doc.value(n);
  if (!Array.isArray(v) || !v.every((s) => typeof s === "string" && ok(s))) {
    r.doc.fail(n, `"${key}" must be a list of ${must}, not ${r.doc.excerpt(n)}`);
  }
  return v as string[];
}

/** A list, each item read by `item`. */
function list<T>(r: Reading, v: Node, key: string, item: (n: Node) => T): T[] {
  if (!Array.isArray(r.doc.value(v))) r.doc.fail(v, `"${key}" must be a list`);
  return (v.children ?? []).map(item);
}

const addFiles = (r: Reading, files: FileSpec[]) => {
  r.cap.files = [...(r.cap.files as FileSpec[] | undefined ?? []), ...files];
};

/** One `files` item: a path, or `{"path", "containerPath"}`. */
function fileItem(r: Reading, item: Node): FileSpec {
  const doc: JsoncDoc = r.doc;
  const f = doc.value(item);
  const obj = typeof f === "object" && f !== null ? f as Record<string, unknown> : null;
  const path = typeof f === "string" ? f : obj?.path;
  const dest = obj?.containerPath;
  const extra = obj !== null ? Object.keys(obj).filter((x) => x !== "path" && x !== "containerPath") : [];
  if (typeof path !== "string" || !isCleanAbsolute(path) || extra.length > 0) {
    doc.fail(
      item,
      `a file must be an absolute path under the driver root without "..", or {"path", "containerPath"}`,
    );
  }
  if (dest !== undefined && (typeof dest !== "string" || !isCleanAbsolute(dest))) {
    doc.fail(item, `"containerPath" must be an absolute path without ".."`);
  }
  return dest === undefined ? { candidates: [path] } : { candidates: [path], containerPath: dest as string };
}

/** The readers of a plugin's keys, each setting its part of the capability. */
const KEYS: Record<string, (r: Reading, v: Node, key: string) => void> = {
  capability(r, v) {
    const doc: JsoncDoc = r.doc;
    const value = doc.value(v);
    if (typeof value !== "string" || !NAME.test(value)) {
      doc.fail(v, `"capability" must be a lower-case name like "infiniband", not ${r.doc.excerpt(v)}`);
    }
    r.name = value;
  },
  description(r, v) {
    const value = r.doc.value(v);
    if (typeof value !== "string") r.doc.fail(v, `"description" must be a string`);
    r.cap.description = value;
  },
  implies(r, v, key) {
    r.cap.implies = strings(r, v, key, (s) => NAME.test(s), "capability names");
  },
  libraries(r, v, key) {
    r.cap.libraries = strings(r, v, key, (s) => /^lib[^/]*\.so$/.test(s), 'SONAME prefixes like "libfoo.so"');
  },
  anyLibraryVersion(r, v) {
    const value = r.doc.value(v);
    if (typeof value !== "boolean") r.doc.fail(v, `"anyLibraryVersion" must be true or false`);
    r.cap.anyLibraryVersion = value;
  },
  binaries(r, v, key) {
    r.cap.binaries = strings(
      r,
      v,
      key,
      (s) => /^[^/\0]+$/.test(s) && s !== "." && s !== "..",
      "program names (no /)",
    );
  },
  files(r, v, key) {
    addFiles(r, list(r, v, key, (item) => fileItem(r, item)));
  },
  directories(r, v, key) {
    const dirs = strings(r, v, key, isCleanAbsolute, 'absolute paths under the driver root without ".."');
    addFiles(r, dirs.map((d) => ({ candidates: [d], dir: true })));
  },
  deviceNodes(r, v, key) {
    r.cap.deviceNodes = list(r, v, key, (item) => {
      const p = r.doc.value(item);
      if (typeof p !== "string" || !isDevicePattern(p)) {
        r.doc.fail(
          item,
          `a device node must be a path under /dev (a * only in its last part), not ${r.doc.excerpt(item)}`,
        );
      }
      return p as string;
    });
  },
  ipcs(r, v, key) {
    const doc: JsoncDoc = r.doc;
    r.cap.ipcs = list(r, v, key, (item): IpcSpec => {
      const x = doc.value(item) as { path?: unknown; kind?: unknown } | string;
      const path = typeof x === "string" ? x : x?.path;
      const kind = typeof x === "string" ? "socket" : x?.kind;
      if (typeof path !== "string" || !isCleanAbsolute(path) || (kind !== "socket" && kind !== "dir")) {
        doc.fail(item, `an ipc must be an absolute path or {"path", "kind": "socket"|"dir"}`);
      }
      return { path, kind };
    });
  },
  env(r, v) {
    const value = r.doc.value(v);
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      r.doc.fail(v, `"env" must be an object`);
    }
    for (const [ek, ev] of properties(v)) {
      const name = ek.value as string;
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || FORBIDDEN_ENV.test(name)) {
        r.doc.fail(ek, `environment variable "${name}" is not allowed in a plugin`);
      }
      if (typeof r.doc.value(ev) !== "string") r.doc.fail(ev, `"env.${name}" must be a string`);
    }
    r.cap.env = value;
  },
};

/** Parses one plugin file's text; `file` names it in errors. */
export function parsePlugin(text: string, file: string): Capability {
  const doc: JsoncDoc = parseJsoncObject(text, file);
  if (doc.root === null) throw new GpuctlError(file, 'is empty: a plugin needs at least "capability"');
  const r: Reading = { doc, cap: { origin: file } };
  for (const [k, v] of properties(doc.root)) {
    const key = k.value as string;
    const read = Object.hasOwn(KEYS, key) ? KEYS[key] : undefined;
    if (read === undefined) {
      doc.fail(k, `unknown key "${key}" (known keys: ${Object.keys(KEYS).join(", ")})`);
    }
    read(r, v, key);
  }
  if (r.name === undefined) throw new GpuctlError(file, 'has no "capability" name');
  r.cap.name = r.name;
  r.cap.description ??= `from ${file}`;
  return r.cap as unknown as Capability;
}

/**
 * Loads every `*.jsonc`/`*.json` file in `dir` (sorted by name); a missing directory means none. `names` is
 * the listing when the caller has already read it.
 */
export function loadPlugins(dir: string, names: readonly string[] = pluginFiles(dir)): Capability[] {
  return names.map((n) => parsePlugin(Deno.readTextFileSync(`${dir}/${n}`), `${dir}/${n}`));
}
