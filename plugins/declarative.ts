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

/** Parses one plugin file's text; `file` names it in errors. */
export function parsePlugin(text: string, file: string): Capability {
  const doc: JsoncDoc = parseJsoncObject(text, file);
  if (doc.root === null) throw new GpuctlError(file, 'is empty: a plugin needs at least "capability"');
  const cap: Record<string, unknown> = { origin: file };
  const strings = (n: Node, key: string, ok: (s: string) => boolean, must: string): string[] => {
    const v = doc.value(n);
    if (!Array.isArray(v) || !v.every((s) => typeof s === "string" && ok(s))) {
      doc.fail(n, `"${key}" must be a list of ${must}, not ${doc.excerpt(n)}`);
    }
    return v as string[];
  };
  let name: string | undefined;
  for (const [k, v] of properties(doc.root)) {
    const key = k.value as string;
    const value = doc.value(v);
    switch (key) {
      case "capability":
        if (typeof value !== "string" || !NAME.test(value)) {
          doc.fail(v, `"capability" must be a lower-case name like "infiniband", not ${doc.excerpt(v)}`);
        }
        name = value;
        break;
      case "description":
        if (typeof value !== "string") doc.fail(v, `"description" must be a string`);
        cap.description = value;
        break;
      case "implies":
        cap.implies = strings(v, key, (s) => NAME.test(s), "capability names");
        break;
      case "libraries":
        cap.libraries = strings(v, key, (s) => /^lib[^/]*\.so$/.test(s), 'SONAME prefixes like "libfoo.so"');
        break;
      case "anyLibraryVersion":
        if (typeof value !== "boolean") doc.fail(v, `"anyLibraryVersion" must be true or false`);
        cap.anyLibraryVersion = value;
        break;
      case "binaries":
        cap.binaries = strings(
          v,
          key,
          (s) => /^[^/\0]+$/.test(s) && s !== "." && s !== "..",
          "program names (no /)",
        );
        break;
      case "files": {
        if (!Array.isArray(value)) doc.fail(v, `"files" must be a list`);
        cap.files = [
          ...(cap.files as FileSpec[] | undefined ?? []),
          ...(v.children ?? []).map((item): FileSpec => {
            const f = doc.value(item);
            const path = typeof f === "string" ? f : (f as { path?: unknown })?.path;
            const dest = typeof f === "object" && f !== null
              ? (f as { containerPath?: unknown }).containerPath
              : undefined;
            const extra = typeof f === "object" && f !== null
              ? Object.keys(f).filter((x) => x !== "path" && x !== "containerPath")
              : [];
            if (typeof path !== "string" || !isCleanAbsolute(path) || extra.length > 0) {
              doc.fail(
                item,
                `a file must be an absolute path under the driver root without "..", or {"path", "containerPath"}`,
              );
            }
            if (dest !== undefined && (typeof dest !== "string" || !isCleanAbsolute(dest))) {
              doc.fail(item, `"containerPath" must be an absolute path without ".."`);
            }
            return dest === undefined
              ? { candidates: [path] }
              : { candidates: [path], containerPath: dest as string };
          }),
        ];
        break;
      }
      case "deviceNodes":
        if (!Array.isArray(value)) doc.fail(v, `"deviceNodes" must be a list`);
        cap.deviceNodes = (v.children ?? []).map((item) => {
          const p = doc.value(item);
          if (typeof p !== "string" || !isDevicePattern(p)) {
            doc.fail(
              item,
              `a device node must be a path under /dev (a * only in its last part), not ${doc.excerpt(item)}`,
            );
          }
          return p as string;
        });
        break;
      case "directories":
        cap.files = [
          ...(cap.files as FileSpec[] | undefined ?? []),
          ...strings(v, key, isCleanAbsolute, 'absolute paths under the driver root without ".."').map((
            d,
          ) => ({
            candidates: [d],
            dir: true,
          })),
        ];
        break;
      case "ipcs":
        if (!Array.isArray(value)) doc.fail(v, `"ipcs" must be a list`);
        cap.ipcs = (v.children ?? []).map((item): IpcSpec => {
          const x = doc.value(item) as { path?: unknown; kind?: unknown } | string;
          const path = typeof x === "string" ? x : x?.path;
          const kind = typeof x === "string" ? "socket" : x?.kind;
          if (typeof path !== "string" || !isCleanAbsolute(path) || (kind !== "socket" && kind !== "dir")) {
            doc.fail(item, `an ipc must be an absolute path or {"path", "kind": "socket"|"dir"}`);
          }
          return { path, kind };
        });
        break;
      case "env": {
        if (typeof value !== "object" || value === null || Array.isArray(value)) {
          doc.fail(v, `"env" must be an object`);
        }
        for (const [ek, ev] of properties(v)) {
          const name = ek.value as string;
          if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name) || FORBIDDEN_ENV.test(name)) {
            doc.fail(ek, `environment variable "${name}" is not allowed in a plugin`);
          }
          if (typeof doc.value(ev) !== "string") doc.fail(ev, `"env.${name}" must be a string`);
        }
        cap.env = value;
        break;
      }
      default:
        doc.fail(
          k,
          `unknown key "${key}" (known keys: capability, description, implies, libraries, anyLibraryVersion, binaries, files, directories, deviceNodes, ipcs, env)`,
        );
    }
  }
  if (name === undefined) throw new GpuctlError(file, 'has no "capability" name');
  cap.name = name;
  cap.description ??= `from ${file}`;
  return cap as unknown as Capability;
}

/**
 * Loads every `*.jsonc`/`*.json` file in `dir` (sorted by name); a missing directory means none. `names` is
 * the listing when the caller has already read it.
 */
export function loadPlugins(dir: string, names: readonly string[] = pluginFiles(dir)): Capability[] {
  return names.map((n) => parsePlugin(Deno.readTextFileSync(`${dir}/${n}`), `${dir}/${n}`));
}
