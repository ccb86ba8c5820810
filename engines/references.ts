/**
 * Every program an engine is configured to run, as its own configuration names it: Docker's runtimes and
 * default runtime, containerd's runtimes (the main file and what it imports), CRI-O's drop-in, and the hooks of the
 * CDI specs. `gpuctl install --uninstall` refuses to remove what one of them still names (an engine left
 * pointing at a deleted file fails every container it starts); `gpuctl doctor` reports the names that lead nowhere.
 * Each file is read by the same reader `gpuctl configure` uses; a file that cannot be read is a reference to
 * nothing, and its reader's error is kept.
 * @module
 */
import { parseDaemonJson } from "./docker.ts";
import { criPlugin, importedFiles, parseToml } from "./containerd.ts";
import { readIfExists } from "./files.ts";
import { loadSpecs, prepareYaml } from "../cdi/resolve.ts";

/** One program an engine's configuration names. */
export interface Reference {
  /** The file that names it. */
  file: string;
  /** The program's path, as written. */
  path: string;
  /** What names it, in words (`Docker's runtime "nvidia", its default runtime`). */
  what: string;
  /** The command that removes the reference. */
  fix: string;
}

export interface EngineFiles {
  dockerConfig: string;
  containerdConfig: string;
  crioDropIn: string;
  cdiSpecDirs: readonly string[];
}

type Table = Record<string, unknown>;
const isTable = (v: unknown): v is Table => v !== null && typeof v === "object" && !Array.isArray(v);

function docker(file: string, errors: string[]): Reference[] {
  const text = readIfExists(file);
  if (text === null) return [];
  try {
    const doc = parseDaemonJson(text, file);
    const def = doc["default-runtime"];
    return Object.entries(isTable(doc.runtimes) ? doc.runtimes : {}).flatMap(([name, r]) => {
      const path = isTable(r) ? r.path : undefined;
      if (typeof path !== "string") return [];
      const flag = name === "nvidia" ? "" : ` --name ${name}`;
      return [{
        file,
        path,
        what: `Docker's runtime "${name}"${def === name ? ", its default runtime" : ""}`,
        fix: `gpuctl configure docker${flag} --remove`,
      }];
    });
  } catch (e) {
    errors.push((e as Error).message);
    return [];
  }
}

function containerd(file: string, errors: string[]): Reference[] {
  const text = readIfExists(file);
  if (text === null) return [];
  try {
    const main = parseToml(text, file);
    const version = main.version === undefined ? 1 : Number(main.version);
    const key = criPlugin(version);
    const out: Reference[] = [];
    const files = [file, ...importedFiles((main.imports ?? []) as string[], file)];
    for (const f of files) {
      const doc = f === file ? main : (() => {
        const t = readIfExists(f);
        return t === null ? null : parseToml(t, f);
      })();
      const cri = (doc?.plugins as Table | undefined)?.[key] as Table | undefined;
      const runtimes = ((cri?.containerd as Table | undefined)?.runtimes ?? {}) as Table;
      for (const [name, r] of Object.entries(runtimes)) {
        if (!isTable(r)) continue;
        const bin = (r.options as Table | undefined)?.BinaryName ?? r.runtime_engine;
        if (typeof bin !== "string" || bin === "") continue;
        const flag = name === "nvidia" ? "" : ` --name ${name}`;
        out.push({
          file: f,
          path: bin,
          what: `containerd's runtime "${name}"`,
          fix: `gpuctl configure containerd${flag} --remove`,
        });
      }
    }
    return out;
  } catch (e) {
    errors.push((e as Error).message);
    return [];
  }
}

function crio(file: string, errors: string[]): Reference[] {
  const text = readIfExists(file);
  if (text === null) return [];
  try {
    const doc = parseToml(text, file);
    const runtimes =
      ((((doc.crio as Table | undefined)?.runtime as Table | undefined)?.runtimes) ?? {}) as Table;
    return Object.entries(runtimes).flatMap(([name, r]) => {
      const path = isTable(r) ? r.runtime_path : undefined;
      if (typeof path !== "string") return [];
      const flag = name === "nvidia" ? "" : ` --name ${name}`;
      return [{
        file,
        path,
        what: `CRI-O's runtime "${name}"`,
        fix: `gpuctl configure crio${flag} --remove`,
      }];
    });
  } catch (e) {
    errors.push((e as Error).message);
    return [];
  }
}

async function cdi(dirs: readonly string[], errors: string[]): Promise<Reference[]> {
  await prepareYaml(dirs);
  const out: Reference[] = [];
  for (const s of loadSpecs(dirs, errors)) {
    const edits = [s.spec.containerEdits, ...s.spec.devices.map((d) => d.containerEdits)];
    const paths = new Set(edits.flatMap((e) => (e?.hooks ?? []).map((h) => h.path)));
    for (const path of paths) {
      out.push({
        file: s.file,
        path,
        what: `the CDI spec for ${s.spec.kind} (a hook)`,
        fix: `rm ${s.file} (or write it again with the new hook: gpuctl cdi generate --output ${s.file})`,
      });
    }
  }
  return out;
}

/** Every program the engines' configurations and the CDI specs name; unreadable files' errors in `errors`. */
export async function engineReferences(f: EngineFiles, errors: string[] = []): Promise<Reference[]> {
  return [
    ...docker(f.dockerConfig, errors),
    ...containerd(f.containerdConfig, errors),
    ...crio(f.crioDropIn, errors),
    ...await cdi(f.cdiSpecDirs, errors),
  ];
}

/** Whether `path` names one of `files` (or something under one of `dirs`), following links in what exists. */
export function namesAny(path: string, files: readonly string[], dirs: readonly string[] = []): boolean {
  const forms = new Set([path]);
  try {
    forms.add(Deno.realPathSync(path));
  } catch { /* gone already, or never there */ }
  for (const p of forms) {
    if (files.includes(p)) return true;
    if (dirs.some((d) => p.startsWith(`${d}/`))) return true;
  }
  return false;
}
