/**
 * The parts of the OCI runtime spec and state gpuctl reads, from untrusted JSON: config.json and the state on a
 * hook's stdin come from whoever created the container. config.json is read as runc reads it (see `json.ts`:
 * keys matched case-insensitively, the last one winning), so gpuctl never sees a request, a privilege or a
 * rootfs that runc does not.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
import { foldKey, type JNode, MAX_DEPTH, member, parseJson } from "./json.ts";
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  check,
  libc,
  O_CLOEXEC,
  O_NOFOLLOW,
  O_PATH,
  O_RDONLY,
  readAll,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  statx,
  strerror,
  SyscallError,
} from "../ffi/libc.ts";

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

export interface OciHook {
  path: string;
  args: string[];
}

/** config.json as runc will use it: the fields gpuctl reads, and the parsed document for editing it. */
export interface OciSpec extends SpecFields {
  /** The document, for edits that keep every other byte (`edit.ts`). */
  readonly tree: JNode;
}

/** The fields of config.json gpuctl reads, as runc will use them: all a hook needs (it edits no config.json). */
export interface SpecFields {
  readonly env: readonly string[];
  /** `process.capabilities.bounding`; `undefined` when the spec gives none. */
  readonly bounding: readonly string[] | undefined;
  /** `root.path` as written (may be relative to the bundle). */
  readonly rootPath: string | undefined;
  readonly mounts: readonly OciMount[];
  /**
   * `annotations` (a Go map: exact keys): those the reader asked to keep (all, unless it passed `keep`); every
   * value is checked all the same.
   */
  readonly annotations: ReadonlyMap<string, string>;
  readonly prestart: readonly OciHook[];
  /** Paths of `linux.devices`. */
  readonly devices: readonly string[];
}

/** The most bytes gpuctl reads of a config.json or a state document. */
export const MAX_SPEC_BYTES = 16 << 20;

/** Parses the state JSON a hook reads from stdin. */
export function parseState(text: string): OciState {
  const what = "container state on stdin";
  // Only its top-level fields are read: the annotations it repeats from config.json are checked, not kept.
  const v = parseJson(text, what, { shallow: true });
  if (v.t !== "obj") throw new GpuctlError(what, "is not a JSON object");
  const pid = member(v, "pid"), bundle = member(v, "bundle") ?? member(v, "bundlePath"), id = member(v, "id");
  const n = pid?.t === "num" ? Number(pid.raw) : NaN;
  if (!Number.isInteger(n) || n <= 0 || n > 2 ** 31) {
    throw new GpuctlError(what, 'has no valid "pid"');
  }
  if (bundle?.t !== "str" || !bundle.value.startsWith("/") || bundle.value.includes("\0")) {
    throw new GpuctlError(what, 'has no absolute "bundle" path');
  }
  return { id: id?.t === "str" ? id.value : "", pid: n, bundle: bundle.value };
}

/**
 * A parsed document as the field reads see it: gpuctl's positional tree ({@link TREE}) or `JSON.parse`'s value
 * (`PLAIN`, for the hooks' fast read). `member` is runc's match: the last key in document order that folds to the field's name.
 */
interface Reader<N> {
  member(o: N | undefined, key: string): N | undefined;
  kind(v: N): "obj" | "arr" | "str" | "null" | "other";
  items(v: N): N[];
  str(v: N): string;
}

const TREE: Reader<JNode> = {
  member,
  kind: (v) => (v.t === "num" || v.t === "bool" ? "other" : v.t),
  items: (v) => (v as { items: JNode[] }).items,
  str: (v) => (v as { value: string }).value,
};

/** Typed reads of config.json's fields, as runc's decoder checks them; `bad` names the field that is not. */
class Fields<N> {
  constructor(readonly r: Reader<N>, readonly bad: (what: string) => never) {}
  /** A field that must be an object when present (null counts as absent, as in Go). */
  obj(parent: N | undefined, key: string, name: string): N | undefined {
    const v = this.r.member(parent, key);
    if (v === undefined || this.r.kind(v) === "null") return undefined;
    if (this.r.kind(v) !== "obj") this.bad(`"${name}" is not an object`);
    return v;
  }
  /** A field that must be a list when present; its items. */
  list(v: N | undefined, name: string): N[] {
    if (v === undefined || this.r.kind(v) === "null") return [];
    if (this.r.kind(v) !== "arr") this.bad(`"${name}" is not a list`);
    return this.r.items(v);
  }
  strings(v: N | undefined, name: string): string[] | undefined {
    if (v === undefined || this.r.kind(v) === "null") return undefined;
    if (this.r.kind(v) !== "arr" || !this.r.items(v).every((x) => this.r.kind(x) === "str")) {
      this.bad(`"${name}" is not a list of strings`);
    }
    return this.r.items(v).map((x) => this.r.str(x));
  }
  optStr(v: N | undefined, name: string): string | undefined {
    if (v === undefined || this.r.kind(v) === "null") return undefined;
    if (this.r.kind(v) !== "str") this.bad(`"${name}" is not a string`);
    return this.r.str(v);
  }
}

/**
 * The fields gpuctl reads from a parsed config.json, in the order runc's decoder would refuse them. `annotations`
 * turns the object runc's rule picks (or none) into the map, checking it at its place in that order.
 */
function fieldsFrom<N>(
  f: Fields<N>,
  doc: N,
  annotationsOf: (ann: N | undefined) => Map<string, string>,
): SpecFields {
  const { member } = f.r;
  const process = f.obj(doc, "process", "process");
  const env = f.strings(member(process, "env"), "process.env") ?? [];
  const caps = f.obj(process, "capabilities", "process.capabilities");
  const bounding = f.strings(member(caps, "bounding"), "process.capabilities.bounding");
  const root = f.obj(doc, "root", "root");
  const rootPath = f.optStr(member(root, "path"), "root.path");
  const mounts: OciMount[] = [];
  for (const item of f.list(member(doc, "mounts"), "mounts")) {
    if (f.r.kind(item) === "null") continue;
    if (f.r.kind(item) !== "obj") f.bad("a mount is not an object");
    const destination = member(item, "destination");
    if (destination === undefined || f.r.kind(destination) !== "str") {
      f.bad('a mount has no "destination" string');
    }
    const mount: OciMount = { destination: f.r.str(destination!) };
    const source = f.optStr(member(item, "source"), "mount source");
    if (source !== undefined) mount.source = source;
    const type = f.optStr(member(item, "type"), "mount type");
    if (type !== undefined) mount.type = type;
    const options = f.strings(member(item, "options"), "mount options");
    if (options !== undefined) mount.options = options;
    mounts.push(mount);
  }
  const annotations = annotationsOf(f.obj(doc, "annotations", "annotations"));
  const prestart = f.list(member(f.obj(doc, "hooks", "hooks"), "prestart"), "hooks.prestart").map((h) => {
    if (f.r.kind(h) !== "obj") f.bad("a prestart hook is not an object");
    return {
      path: f.optStr(member(h, "path"), "hook path") ?? "",
      args: f.strings(member(h, "args"), "hook args") ?? [],
    };
  });
  const linux = f.obj(doc, "linux", "linux");
  const devices = f.list(member(linux, "devices"), "linux.devices").flatMap((d) => {
    const p = f.r.kind(d) === "obj" ? member(d, "path") : undefined;
    return p !== undefined && f.r.kind(p) === "str" ? [f.r.str(p)] : [];
  });
  return { env, bounding, rootPath, mounts, annotations, prestart, devices };
}

/** Which annotations a reader keeps: gpuctl reads a few prefixes, and a config.json may hold any number. */
export type KeepAnnotation = (key: string) => boolean;

const ALL: KeepAnnotation = () => true;

/**
 * Parses config.json text, checking the types of the fields gpuctl reads as runc's decoder would. Only the
 * annotations `keep` accepts are kept.
 */
export function parseSpec(text: string, file: string, keep: KeepAnnotation = ALL): OciSpec {
  // The annotations (any number, the image's author's choice) go straight into maps, one per top-level object
  // that could be runc's `annotations`, instead of into the tree.
  const collected = new Map<JNode, Collected>();
  const tree = parseJson(text, file, {
    collect: (key, node) => {
      if (foldKey(key) !== "annotations") return null;
      const c: Collected = { map: new Map() };
      collected.set(node, c);
      return (k, v) => {
        if (v.t !== "str" && v.t !== "null") c.bad ??= k;
        else if (keep(k)) c.map.set(k, v.t === "str" ? v.value : "");
      };
    },
  });
  if (tree.t !== "obj") throw new GpuctlError(file, "is not a JSON object");
  const f = new Fields(TREE, (what) => {
    throw new GpuctlError(file, what);
  });
  return {
    tree,
    ...fieldsFrom(f, tree, (ann) => {
      const c = ann === undefined ? undefined : collected.get(ann);
      if (c?.bad !== undefined) f.bad(`annotation "${c.bad.slice(0, 64)}" is not a string`);
      return c?.map ?? new Map();
    }),
  };
}

/**
 * config.json's fields for a hook, which reads and never edits it: those {@link parseSpec} gives, found faster
 * where that is proven to give the same (see {@link fastSpecFields}), else by {@link parseSpec} itself.
 */
export function readSpecFields(text: string, file: string, keep: KeepAnnotation = ALL): SpecFields {
  const fast = fastSpecFields(text, keep);
  if (fast !== null) return fast;
  const { tree: _, ...fields } = parseSpec(text, file, keep);
  return fields;
}

/** Larger texts are left to {@link parseSpec} (config.json is usually a few KiB). */
const FAST_MAX_CHARS = 1 << 20;
/** Deeper documents are left to {@link parseSpec} (config.json nests 7 deep). */
const FAST_MAX_DEPTH = Math.min(64, MAX_DEPTH);
/** Keys that a JavaScript object lists before all others, out of document order. */
const INDEX_KEY = /^(?:0|[1-9][0-9]*)$/;

type Plain = Record<string, unknown>;
const isPlain = (v: unknown): v is Plain => typeof v === "object" && v !== null && !Array.isArray(v);

/** `JSON.parse`'s value read as the fields are read ({@link Reader}), for a text with no key twice in an object. */
const PLAIN: Reader<unknown> = {
  /** runc's match, as `member` in json.ts: the last key in document order that folds to `key`. */
  member(o, key) {
    if (!isPlain(o)) return undefined;
    const want = foldKey(key);
    let v: unknown = undefined;
    for (const k of Object.keys(o)) if (foldKey(k) === want) v = o[k];
    return v;
  },
  kind: (v) =>
    v === null
      ? "null"
      : Array.isArray(v)
      ? "arr"
      : typeof v === "string"
      ? "str"
      : isPlain(v)
      ? "obj"
      : "other",
  items: (v) => v as unknown[],
  str: (v) => v as string,
};

/** The fast read's field reads: where one would refuse, {@link parseSpec} reads the text and says why. */
const FAST_FIELDS = new Fields(PLAIN, () => {
  throw new Error("not fast");
});

/**
 * The fields {@link parseSpec} gives, from `JSON.parse` (the engine's parser, where gpuctl's own positional parser
 * costs milliseconds in a process that runs once), or `null` where that could differ. `JSON.parse` keeps one value
 * per key, the last, at the place of the first: so the text must have no key twice in one object, which holds when
 * its keys (counted on the text's tokens) are as many as the parsed objects'. Keys that differ only in case stay
 * apart in both, and are matched as runc matches them ({@link PLAIN}), by the same reads ({@link fieldsFrom}). A
 * key with an escape (V8 can misname it), any field of the wrong type, an annotation key JavaScript would list out
 * of order, a deep or large text: `null`, and the error or the answer is {@link parseSpec}'s.
 * `tests/unit/spec_fast_test.ts` compares the two on a corpus and on random mutations.
 */
export function fastSpecFields(text: string, keep: KeepAnnotation = ALL): SpecFields | null {
  if (text.length > FAST_MAX_CHARS) return null;
  try {
    const doc: unknown = JSON.parse(text);
    if (!isPlain(doc)) return null;
    const keys = keysInText(text);
    if (keys === null || keysIn(doc, FAST_MAX_DEPTH) !== keys) return null;
    return fieldsFrom(FAST_FIELDS, doc, (ann) => {
      const annotations = new Map<string, string>();
      for (const [k, v] of Object.entries(ann ?? {})) {
        if (INDEX_KEY.test(k) || (typeof v !== "string" && v !== null)) FAST_FIELDS.bad(k);
        if (keep(k)) annotations.set(k, typeof v === "string" ? v : "");
      }
      return annotations;
    });
  } catch { // not JSON, a field of the wrong type, an engine limit: parseSpec answers
    return null;
  }
}

/**
 * How many keys a valid JSON text has (strings followed by a colon), or `null` where one holds an escape: this
 * Deno's JSON.parse can give an escaped key another key's name (see config/read.ts quickJsonc). Found from quote to
 * quote with the engine's string search rather than a regular expression or a loop over every character: in a
 * short-lived gpuctl, V8 runs without its JIT (tools/pack/build.ts), and either would be interpreted.
 */
export function keysInText(text: string): number | null {
  let keys = 0, at = 0, escape = text.indexOf("\\");
  for (;;) {
    const open = text.indexOf('"', at);
    if (open < 0) return keys;
    // The closing quote: the first one no backslash escapes (each escape is a backslash and the character after).
    let close = text.indexOf('"', open + 1);
    let escaped = false;
    while (escape >= 0 && escape < close) {
      escaped = true;
      if (escape + 1 === close) close = text.indexOf('"', close + 1);
      escape = text.indexOf("\\", escape + 2);
    }
    if (close < 0) return null; // not JSON: JSON.parse has refused it already
    at = close + 1;
    let c = text.charCodeAt(at);
    while (c === 0x20 || c === 0x0a || c === 0x09 || c === 0x0d) c = text.charCodeAt(++at);
    if (c === 0x3a) {
      if (escaped) return null;
      keys++;
    }
  }
}

/** How many keys the objects in `v` have, all together; -1 where arrays and objects nest deeper than `maxDepth`. */
function keysIn(v: unknown, maxDepth: number): number {
  let n = 0;
  const todo = [v], depths = [1];
  while (todo.length > 0) {
    const x = todo.pop(), depth = depths.pop()!;
    if (Array.isArray(x)) {
      if (depth > maxDepth) return -1;
      for (const y of x) todo.push(y), depths.push(depth + 1);
    } else if (isPlain(x)) {
      if (depth > maxDepth) return -1;
      const ks = Object.keys(x);
      n += ks.length;
      for (const k of ks) todo.push(x[k]), depths.push(depth + 1);
    }
  }
  return n;
}

/** An annotations object's members, collected while parsing: a later duplicate key overwrites an earlier one. */
interface Collected {
  map: Map<string, string>;
  /** The first member that is not a string (Go's decoder refuses any that is not). */
  bad?: string;
}

/**
 * Reads a regular file of at most `max` bytes by path, never through a symlink, a FIFO or a device (opened
 * `O_PATH` and checked before any read open): config.json, whose content is not trusted.
 */
export function readLimited(path: string, max = MAX_SPEC_BYTES): string {
  let fd: number;
  try {
    fd = check(`open ${path}`, () => libc().open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0));
  } catch (e) {
    throw new GpuctlError(
      path,
      `cannot be opened: ${e instanceof SyscallError ? strerror(e.errno) : String(e)}`,
      1,
      { cause: e },
    );
  }
  try {
    const st = statx(fd, "", AT_EMPTY_PATH);
    if ((st.mode & S_IFMT) === S_IFLNK) throw new GpuctlError(path, "is a symlink; refusing to read it");
    if ((st.mode & S_IFMT) !== S_IFREG) throw new GpuctlError(path, "is not a regular file");
    if (st.size > max) throw new GpuctlError(path, `is larger than ${max} bytes`);
    const rfd = check(
      `open ${path}`,
      () => libc().openat(AT_FDCWD, `/proc/self/fd/${fd}`, O_RDONLY | O_CLOEXEC, 0),
    );
    try {
      return new TextDecoder().decode(readAll(rfd, max, path, st.size));
    } finally {
      libc().close(rfd);
    }
  } finally {
    libc().close(fd);
  }
}

/** The container's environment as a map; a later duplicate wins, as in NVIDIA's runtime. */
export function envMap(spec: Pick<SpecFields, "env">): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of spec.env) {
    const i = e.indexOf("=");
    if (i > 0) m.set(e.slice(0, i), e.slice(i + 1));
  }
  return m;
}
