/**
 * containerd: the runtime goes into a drop-in gpuctl owns (`/etc/containerd/conf.d/99-gpuctl.toml`), pulled in by
 * the main file's `imports` — the one edit made to the user's file, so its comments and layout stay as they were.
 * Everything is read and written through a TOML library (smol-toml), and checked by parsing it back.
 *
 * containerd 1.x gives a plugin's table in an imported file precedence over the main file's **whole** table (it
 * does not merge inside it), so the drop-in carries the CRI plugin's complete effective table — the main file's,
 * replaced by any earlier import's, as containerd would see it — plus the new runtime. The runtime copies the
 * default runtime's entry (`runc`'s `runtime_type` and `options`, `SystemdCgroup` included: pods under the
 * RuntimeClass must use the kubelet's cgroup driver) and points it at gpuctl-runtime. Config versions 1 (`cri`), 2
 * (`io.containerd.grpc.v1.cri`) and 3 (containerd 2.x, `io.containerd.cri.v1.runtime`).
 * @module
 */
import { parse, stringify, TomlError } from "smol-toml";
import { GpuctlError } from "../errors/mod.ts";
import { type FileChange, owned, OWNED_MARK, readIfExists, sameValue, undoByBackup } from "./files.ts";
import { arraySpan, topLevelKey } from "./toml_text.ts";

export const CONTAINERD_CONFIG = "/etc/containerd/config.toml";
export const CONTAINERD_DROPIN = "/etc/containerd/conf.d/99-gpuctl.toml";

type Table = Record<string, unknown>;

const isTable = (v: unknown): v is Table =>
  v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Date);

/** TOML as containerd reads it; integers stay integers (bigint), floats floats. */
export function parseToml(text: string, file: string): Table {
  try {
    return parse(text, { integersAsBigInt: true }) as Table;
  } catch (e) {
    if (e instanceof TomlError) {
      throw new GpuctlError(
        `${file}:${e.line}:${e.column}`,
        `invalid TOML (${
          e.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "")
        }); containerd would not start with it either: fix it first`,
        1,
        { cause: e },
      );
    }
    throw e;
  }
}

/** TOML text for `doc`, as the library writes it (integers as integers, other numbers as floats). */
export function toToml(doc: Table): string {
  return stringify(doc, { numbersAsFloat: true });
}

/** The CRI plugin's key for a config version. */
export function criPlugin(version: number): string {
  return version >= 3 ? "io.containerd.cri.v1.runtime" : version === 2 ? "io.containerd.grpc.v1.cri" : "cri";
}

function versionOf(doc: Table, file: string): number {
  const v = doc.version;
  if (v === undefined) return 1; // what containerd assumes
  const n = Number(v);
  if (typeof v !== "bigint" || ![1, 2, 3].includes(n)) {
    throw new GpuctlError(`${file}: version`, `is ${String(v)}; containerd config versions are 1, 2 and 3`);
  }
  return n;
}

const dirOf = (p: string) => p.slice(0, p.lastIndexOf("/")) || "/";
const baseOf = (p: string) => p.slice(p.lastIndexOf("/") + 1);

/** Shell-style match of a file name against a pattern with `*`, `?` and `[...]` (Go's filepath.Match). */
export function globMatch(pattern: string, name: string): boolean {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 1);
      if (end < 0) return false;
      const body = pattern.slice(i + 1, end).replace(/^\^/, "!").replace(/\\/g, "\\\\");
      re += `[${body.startsWith("!") ? "^" + body.slice(1) : body}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`).test(name);
}

/** The files an `imports` list names, in containerd's order (each pattern's matches sorted), as absolute paths. */
export function importedFiles(entries: readonly string[], mainFile: string): string[] {
  const out: string[] = [];
  for (const e of entries) {
    const abs = e.startsWith("/") ? e : `${dirOf(mainFile)}/${e}`;
    if (!/[*?[]/.test(baseOf(abs))) {
      out.push(abs);
      continue;
    }
    let names: string[] = [];
    try {
      names = [...Deno.readDirSync(dirOf(abs))].map((d) => d.name).filter((n) => globMatch(baseOf(abs), n))
        .sort();
    } catch { /* no such directory: nothing imported */ }
    out.push(...names.map((n) => `${dirOf(abs)}/${n}`));
  }
  return out;
}

/** Whether an `imports` entry of `mainFile` names `file`. */
export function importsFile(entry: string, mainFile: string, file: string): boolean {
  const abs = entry.startsWith("/") ? entry : `${dirOf(mainFile)}/${entry}`;
  return dirOf(abs) === dirOf(file) && globMatch(baseOf(abs), baseOf(file));
}

function importsOf(doc: Table, file: string): string[] {
  const i = doc.imports;
  if (i === undefined) return [];
  if (!Array.isArray(i) || !i.every((x) => typeof x === "string")) {
    throw new GpuctlError(`${file}: imports`, "must be a list of file names");
  }
  return i as string[];
}

export interface ContainerdOptions {
  file: string;
  dropIn: string;
  name: string;
  path: string;
  setDefault: boolean;
  remove: boolean;
  /** The config version of a main file gpuctl creates. */
  newVersion: number;
  /** Also let containerd (1.7 and later) apply CDI specs itself, from these directories. */
  cdi?: { dirs: readonly string[] };
  /**
   * Annotation prefixes whose container annotations carry CDI device names (a device plugin's `cdi.k8s.io/…`):
   * containerd's CRI passes a container's annotations to the runtime only where the runtime's
   * `container_annotations` lists them.
   */
  annotationPrefixes?: readonly string[];
}

/**
 * The CRI plugin's table as containerd 1.x sees it: the main file's, replaced by that of each imported file that
 * has one, in order (gpuctl's own drop-in left out).
 */
function effectiveCri(doc: Table, o: ContainerdOptions, key: string): Table {
  let cri = isTable(doc.plugins) && isTable(doc.plugins[key]) ? doc.plugins[key] : {};
  for (const f of importedFiles(importsOf(doc, o.file), o.file)) {
    if (f === o.dropIn || f === o.file) continue;
    const text = readIfExists(f);
    if (text === null) continue;
    const d = parseToml(text, f);
    if (isTable(d.plugins) && isTable(d.plugins[key])) cri = d.plugins[key];
  }
  return structuredClone(cri);
}

/** The drop-in's text: the effective CRI table with the runtime added (and made the default). */
export function dropInText(doc: Table, version: number, o: ContainerdOptions): string {
  const key = criPlugin(version);
  const cri = effectiveCri(doc, o, key);
  const ctrd = isTable(cri.containerd) ? cri.containerd : (cri.containerd = {}) as Table;
  const runtimes = isTable(ctrd.runtimes) ? ctrd.runtimes : (ctrd.runtimes = {}) as Table;
  const def = typeof ctrd.default_runtime_name === "string" && ctrd.default_runtime_name !== o.name
    ? ctrd.default_runtime_name
    : "runc";
  const base = isTable(runtimes[def]) ? runtimes[def] : isTable(runtimes.runc) ? runtimes.runc : {};
  const rt = structuredClone(base) as Table;
  rt.runtime_type ??= "io.containerd.runc.v2";
  if (rt.runtime_type === "io.containerd.runtime.v1.linux") rt.runtime_engine = o.path;
  else {
    const options = isTable(rt.options) ? rt.options : (rt.options = {}) as Table;
    options.BinaryName = o.path;
  }
  if (o.annotationPrefixes !== undefined && o.annotationPrefixes.length > 0) {
    const have = Array.isArray(rt.container_annotations)
      ? rt.container_annotations.filter((a): a is string => typeof a === "string")
      : [];
    rt.container_annotations = [...new Set([...have, ...o.annotationPrefixes.map((p) => `${p}*`)])];
  }
  runtimes[o.name] = rt;
  if (o.setDefault) ctrd.default_runtime_name = o.name;
  if (o.cdi) {
    cri.enable_cdi = true;
    cri.cdi_spec_dirs = [...o.cdi.dirs];
  }
  return `${OWNED_MARK} containerd: the runtime "${o.name}" (gpuctl-runtime).
# containerd lets a plugin's table in an imported file replace the main file's whole table, so this file holds
# the complete CRI plugin table (${key}) as containerd saw it, plus that runtime. After changing the CRI
# settings in ${o.file}, run 'gpuctl configure containerd' again; 'gpuctl configure containerd --remove'
# removes this file and the import.
${toToml({ version: BigInt(version), plugins: { [key]: cri } })}`;
}

const IMPORT_COMMENT = "# gpuctl configure containerd";

/** The main file with `dropIn` added to its `imports` (its one edit), or unchanged when it is already imported. */
export function withImport(text: string, doc: Table, o: ContainerdOptions): string {
  const imports = importsOf(doc, o.file);
  if (imports.some((e) => importsFile(e, o.file, o.dropIn))) return text;
  const entry = JSON.stringify(o.dropIn);
  let out: string;
  const at = topLevelKey(text, "imports");
  if (at === null) {
    const line = `imports = [${entry}] ${IMPORT_COMMENT}\n`;
    const v = topLevelKey(text, "version");
    const lines = text.split("\n");
    if (v !== null) lines.splice(v.line + 1, 0, line.slice(0, -1));
    else lines.unshift(line.slice(0, -1));
    out = lines.join("\n");
  } else {
    const span = arraySpan(text, at.valueAt);
    if (span === null) {
      throw new GpuctlError(
        `${o.file}: imports`,
        "is not a list gpuctl can add to; add the drop-in yourself",
      );
    }
    const inner = text.slice(span.open + 1, span.close).replace(/#[^\n]*/g, "").trim();
    const lineStart = text.lastIndexOf("\n", span.close - 1) + 1;
    if (inner.endsWith(",") && text.slice(lineStart, span.close).trim() === "") {
      // A list written one entry per line, with a trailing comma: one more line, indented like the first entry.
      const first = text.slice(span.open + 1).match(/\n([ \t]*)\S/);
      out = text.slice(0, lineStart) + `${first?.[1] ?? "  "}${entry},\n` + text.slice(lineStart);
    } else {
      const add = inner === "" ? entry : inner.endsWith(",") ? ` ${entry}` : `, ${entry}`;
      out = text.slice(0, span.close) + add + text.slice(span.close);
    }
  }
  const want = { ...doc, imports: [...imports, o.dropIn] };
  if (!sameValue(parseToml(out, o.file), want)) {
    throw new GpuctlError(
      o.file,
      "adding the import did not give the intended TOML; nothing was written (please report this)",
    );
  }
  return out;
}

/** The main file without the `dropIn` import gpuctl added. */
export function withoutImport(text: string, doc: Table, o: ContainerdOptions): string {
  const imports = importsOf(doc, o.file);
  if (!imports.includes(o.dropIn)) return text;
  const lines = text.split("\n");
  const ours = lines.findIndex((l) => l === `imports = [${JSON.stringify(o.dropIn)}] ${IMPORT_COMMENT}`);
  let out: string;
  if (ours >= 0) {
    lines.splice(ours, 1);
    out = lines.join("\n");
  } else {
    const at = topLevelKey(text, "imports");
    const span = at && arraySpan(text, at.valueAt);
    if (!span) return text;
    const body = text.slice(span.open, span.close + 1);
    const entry = JSON.stringify(o.dropIn);
    const i = body.indexOf(entry);
    if (i < 0) return text;
    let from = i, to = i + entry.length;
    const after = body.slice(to).match(/^\s*,\s*/), before = body.slice(0, from).match(/,\s*$/);
    if (after) to += after[0].length;
    else if (before) from -= before[0].length;
    out = text.slice(0, span.open) + body.slice(0, from) + body.slice(to) + text.slice(span.close + 1);
  }
  const want: Table = { ...doc, imports: imports.filter((e) => e !== o.dropIn) };
  if (ours >= 0 && (want.imports as string[]).length === 0) delete want.imports;
  if (!sameValue(parseToml(out, o.file), want)) {
    throw new GpuctlError(
      o.file,
      "removing the import did not give the intended TOML; nothing was written (please report this)",
    );
  }
  return out;
}

/** The changes to the main file and the drop-in. */
export function containerdChanges(o: ContainerdOptions): FileChange[] {
  const mainText = readIfExists(o.file);
  const dropText = readIfExists(o.dropIn);
  if (dropText !== null && !owned(dropText)) {
    throw new GpuctlError(
      o.dropIn,
      "exists and was not written by gpuctl; pass --drop-in FILE for a file of gpuctl's own",
    );
  }
  const check = (file: string) => (t: string) => void parseToml(t, file);
  if (o.remove) {
    const changes: FileChange[] = [{ file: o.dropIn, before: dropText, after: null }];
    if (mainText !== null) {
      if (owned(mainText)) changes.push({ file: o.file, before: mainText, after: null });
      else {
        const sameToml = (a: string, b: string) => {
          try {
            return sameValue(parseToml(a, o.file), parseToml(b, o.file));
          } catch { // not TOML: not the same
            return false;
          }
        };
        const backup = undoByBackup(
          o.file,
          mainText,
          (b) => [withImport(b, parseToml(b, o.file), o)],
          sameToml,
        );
        changes.push({
          file: o.file,
          before: mainText,
          after: backup ?? withoutImport(mainText, parseToml(mainText, o.file), o),
          check: check(o.file),
          restored: backup !== null,
          undo: true,
        });
      }
    }
    return changes.filter((c) => c.before !== null);
  }
  let main: string;
  if (mainText === null || mainText.trim() === "") {
    main =
      `${OWNED_MARK} containerd: containerd's defaults, and gpuctl's drop-in.\nversion = ${o.newVersion}\n`;
  } else main = mainText;
  const doc = parseToml(main, o.file);
  const version = versionOf(doc, o.file);
  main = withImport(main, doc, o);
  return [
    { file: o.file, before: mainText, after: main, check: check(o.file) },
    {
      file: o.dropIn,
      before: dropText,
      after: dropInText(doc, version, o),
      check: check(o.dropIn),
      like: o.file,
    },
  ];
}
