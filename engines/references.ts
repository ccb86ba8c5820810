/**
 * Every program an engine is configured to run, as its own configuration names it: Docker's runtimes and
 * default runtime, containerd's runtimes (the main file and what it imports), CRI-O's drop-in, and the hooks of the
 * CDI specs. `gpuctl install --uninstall` refuses to remove what one of them still names (an engine left
 * pointing at a deleted file fails every container it starts); `gpuctl doctor` reports the names that lead nowhere.
 * Each file is read by the same reader `gpuctl configure` uses; a file that cannot be read is a reference to
 * nothing, and its reader's error is kept.
 * @module
 */
import { containerdRuntimes, crioRuntimes, dockerRuntimes, nameFlag } from "./registered.ts";
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

/** Each reader's result, or its error kept and nothing named. */
function tryRead<T>(read: () => T | null, errors: string[]): T | null {
  try {
    return read();
  } catch (e) {
    errors.push((e as Error).message);
    return null;
  }
}

function docker(file: string, errors: string[]): Reference[] {
  const d = tryRead(() => dockerRuntimes(file), errors);
  return (d?.runtimes ?? []).map((r) => ({
    file,
    path: r.path,
    what: `Docker's runtime "${r.name}"${d?.defaultRuntime === r.name ? ", its default runtime" : ""}`,
    fix: `gpuctl configure docker${nameFlag(r.name)} --remove`,
  }));
}

function containerd(file: string, errors: string[]): Reference[] {
  return (tryRead(() => containerdRuntimes(file), errors) ?? []).filter((r) => r.path !== "").map((r) => ({
    file: r.file,
    path: r.path,
    what: `containerd's runtime "${r.name}"`,
    fix: `gpuctl configure containerd${nameFlag(r.name)} --remove`,
  }));
}

function crio(file: string, errors: string[]): Reference[] {
  return (tryRead(() => crioRuntimes(file), errors) ?? []).map((r) => ({
    file,
    path: r.path,
    what: `CRI-O's runtime "${r.name}"`,
    fix: `gpuctl configure crio${nameFlag(r.name)} --remove`,
  }));
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
