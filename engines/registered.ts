/**
 * The runtimes an engine's configuration registers, read by the readers `gpuctl configure` uses: Docker's
 * daemon.json (with its default runtime), containerd's CRI runtimes (the main file and what it imports, or those
 * containerd uses), and CRI-O's runtimes. `gpuctl install --uninstall` and
 * `gpuctl doctor` read the engines through these.
 * @module
 */
import { parseDaemonJson } from "./docker.ts";
import { criPlugin, importedFiles, parseToml } from "./containerd.ts";
import { readIfExists } from "./files.ts";

/** One runtime an engine's configuration names. */
export interface Registered {
  /** The file that names it. */
  file: string;
  name: string;
  /** The program, as written; containerd: "" when the entry names none (its default, runc from PATH). */
  path: string;
  /** containerd: its `options.SystemdCgroup`. */
  systemdCgroup?: boolean;
}

/** The `--name` a gpuctl command needs for a runtime of this name (none for NVIDIA's default, `nvidia`). */
export const nameFlag = (name: string): string => name === "nvidia" ? "" : ` --name ${name}`;

type Table = Record<string, unknown>;
const isTable = (v: unknown): v is Table => v !== null && typeof v === "object" && !Array.isArray(v);

/** Docker's runtimes and default runtime; null when the file is absent. Throws the reader's error in words. */
export function dockerRuntimes(file: string): { runtimes: Registered[]; defaultRuntime?: string } | null {
  const text = readIfExists(file);
  if (text === null) return null;
  const doc = parseDaemonJson(text, file);
  const runtimes = Object.entries(isTable(doc.runtimes) ? doc.runtimes : {}).flatMap(([name, r]) => {
    const path = isTable(r) ? r.path : undefined;
    return typeof path === "string" ? [{ file, name, path }] : [];
  });
  const def = doc["default-runtime"];
  return { runtimes, ...(typeof def === "string" ? { defaultRuntime: def } : {}) };
}

/**
 * containerd's CRI runtimes, from the main file and the files it imports, in that order; null when the main file
 * is absent. With `effective`, only those containerd uses: an imported file's CRI plugin table replaces the whole
 * table before it (containerd 1.x does not merge inside a plugin's table), so the last file that has one gives them
 * all.
 */
export function containerdRuntimes(file: string, effective = false): Registered[] | null {
  const text = readIfExists(file);
  if (text === null) return null;
  const main = parseToml(text, file);
  const version = main.version === undefined ? 1 : Number(main.version);
  const key = criPlugin(version);
  let out: Registered[] = [];
  for (const f of [file, ...importedFiles((main.imports ?? []) as string[], file)]) {
    const t = f === file ? text : readIfExists(f);
    const doc = t === null ? null : f === file ? main : parseToml(t, f);
    const cri = (doc?.plugins as Table | undefined)?.[key] as Table | undefined;
    if (effective && cri !== undefined) out = [];
    const runtimes = ((cri?.containerd as Table | undefined)?.runtimes ?? {}) as Table;
    for (const [name, r] of Object.entries(runtimes)) {
      if (!isTable(r)) continue;
      const options = isTable(r.options) ? r.options : {};
      const bin = options.BinaryName ?? r.runtime_engine;
      // runc's own entry names no program (containerd runs runc from PATH): kept, for its options.
      const path = typeof bin === "string" ? bin : "";
      out.push({ file: f, name, path, systemdCgroup: options.SystemdCgroup === true });
    }
  }
  return out;
}

/** CRI-O's runtimes in one file; null when it is absent. */
export function crioRuntimes(file: string): Registered[] | null {
  const text = readIfExists(file);
  if (text === null) return null;
  const doc = parseToml(text, file);
  const runtimes = (((doc.crio as Table | undefined)?.runtime as Table | undefined)?.runtimes ?? {}) as Table;
  return Object.entries(runtimes).flatMap(([name, r]) => {
    const path = isTable(r) ? r.runtime_path : undefined;
    return typeof path === "string" ? [{ file, name, path }] : [];
  });
}
