/**
 * config.json read as runc reads it. runc decodes it with Go's `encoding/json`, which matches object keys to its
 * fields case-insensitively (with Unicode simple folding: `ſ` is an `s`, `K` a `k`) and lets the last matching
 * key win. `JSON.parse` does neither, so a spec with `"env"` and `"Env"` would mean one thing to runc and another
 * to gpuctl. This parser keeps every member in document order, with its position in the text, so that lookups
 * follow runc's rule and edits land in the member runc will use.
 *
 * The input is untrusted: the parser is iterative (no recursion), refuses nesting deeper than Go's own limit
 * (10,000), holds memory linear in the input, and its errors give a position, never the input's bytes.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";

/** A parsed JSON value and where it is in the text (`end` is one past its last character). */
export type JNode =
  | { t: "obj"; start: number; end: number; members: [string, JNode][] }
  | { t: "arr"; start: number; end: number; items: JNode[] }
  | { t: "str"; start: number; end: number; value: string }
  | { t: "num"; start: number; end: number; raw: string }
  | { t: "bool"; start: number; end: number; value: boolean }
  | { t: "null"; start: number; end: number };

/** Go's encoding/json refuses documents nested deeper than this; so does gpuctl. */
export const MAX_DEPTH = 10_000;

/** `line:column` (1-based) of an offset. */
function position(text: string, offset: number): string {
  let line = 1, last = -1;
  for (let i = text.indexOf("\n"); i >= 0 && i < offset; i = text.indexOf("\n", i + 1)) {
    line++;
    last = i;
  }
  return `line ${line}, column ${offset - last}`;
}

const WS = (c: number) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;

/** Where a collected object's members go, in document order, instead of its `members`. */
export type MemberSink = (key: string, value: JNode) => void;

export interface ParseOptions {
  /** Keep only the top level's members; everything below is checked and dropped. */
  shallow?: boolean;
  /**
   * For an object that is a member of the top-level object (`key`): a sink for its members, which are then not
   * kept in the tree (config.json's annotations, read once into a map), or null to keep them.
   */
  collect?: (key: string, node: JNode) => MemberSink | null;
}

/**
 * Parses JSON text. `what` names the input in errors, which say where the text is wrong and never quote it.
 *
 * One function, longer than the rest of gpuctl's: a single loop over an explicit stack of open containers, whose
 * states are read together (a value, then a separator or a close, per container kind). Split into functions, the
 * stack and the position would be passed through each, and nothing in it recurses on the input's depth.
 */
export function parseJson(text: string, what: string, o: ParseOptions = {}): JNode {
  // Shallow: every value is checked, but only the top-level members are kept (a container state's annotations,
  // which the hook never reads, cost no memory).
  const keepAll = o.shallow !== true;
  let i = 0;
  const fail = (why: string, at = i): never => {
    throw new GpuctlError(what, `is not valid JSON: ${why} at ${position(text, Math.min(at, text.length))}`);
  };
  const skip = () => {
    while (i < text.length && WS(text.charCodeAt(i))) i++;
  };
  const parseString = (): string => {
    const start = i++; // the opening quote
    let out = "", from = i;
    for (;;) {
      if (i >= text.length) fail("unterminated string", start);
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) fail("control character in a string");
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += text.slice(from, i);
      const e = text.charCodeAt(i + 1);
      i += 2;
      switch (e) {
        case 0x22:
          out += '"';
          break;
        case 0x5c:
          out += "\\";
          break;
        case 0x2f:
          out += "/";
          break;
        case 0x62:
          out += "\b";
          break;
        case 0x66:
          out += "\f";
          break;
        case 0x6e:
          out += "\n";
          break;
        case 0x72:
          out += "\r";
          break;
        case 0x74:
          out += "\t";
          break;
        case 0x75: {
          const hex = text.slice(i, i + 4);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("bad \\u escape", i - 2);
          out += String.fromCharCode(parseInt(hex, 16));
          i += 4;
          break;
        }
        default:
          fail("bad escape", i - 2);
      }
      from = i;
    }
    out += text.slice(from, i);
    i++; // the closing quote
    return out;
  };
  const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const scalar = (): JNode => {
    const start = i;
    const c = text.charCodeAt(i);
    if (c === 0x22) return { t: "str", start, value: parseString(), end: i };
    if (text.startsWith("true", i)) return { t: "bool", start, end: i += 4, value: true };
    if (text.startsWith("false", i)) return { t: "bool", start, end: i += 5, value: false };
    if (text.startsWith("null", i)) return { t: "null", start, end: i += 4 };
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (m === null || m[0] === "" || m[0] === "-") {
      return fail(i >= text.length ? "unexpected end" : "unexpected character");
    }
    i += m[0].length;
    return { t: "num", start, end: i, raw: m[0] };
  };

  type Open = Extract<JNode, { t: "obj" | "arr" }>;
  const stack: { node: Open; key: string | null; sink: MemberSink | null }[] = [];
  let root: JNode | undefined;
  skip();
  for (;;) {
    // A value is expected here (at the top, after `[`, `,` in an array, or `:` in an object).
    skip();
    let value: JNode;
    const c = text.charCodeAt(i);
    if (c === 0x7b || c === 0x5b) {
      if (stack.length >= MAX_DEPTH) fail(`nested deeper than ${MAX_DEPTH} levels`);
      const node: Open = c === 0x7b
        ? { t: "obj", start: i, end: -1, members: [] }
        : { t: "arr", start: i, end: -1, items: [] };
      i++;
      skip();
      const close = c === 0x7b ? 0x7d : 0x5d;
      if (text.charCodeAt(i) === close) {
        node.end = ++i;
        value = node;
      } else {
        let key: string | null = null;
        if (node.t === "obj") {
          if (text.charCodeAt(i) !== 0x22) fail("expected a key");
          key = parseString();
          skip();
          if (text.charCodeAt(i) !== 0x3a) fail("expected ':'");
          i++;
        }
        // A top-level member's object may hand its members to a sink instead of keeping them.
        const root = stack.length === 1 ? stack[0]! : undefined;
        const sink = o.collect && root?.node.t === "obj" && node.t === "obj"
          ? o.collect(root.key!, node)
          : null;
        stack.push({ node, key, sink });
        continue;
      }
    } else {
      value = scalar();
    }
    // Attach the value, then close every container that ends here.
    for (;;) {
      const top = stack.at(-1);
      if (top === undefined) {
        root = value;
        break;
      }
      if (top.sink !== null) top.sink(top.key!, value);
      else if (keepAll || stack.length === 1) {
        if (top.node.t === "obj") top.node.members.push([top.key!, value]);
        else top.node.items.push(value);
      }
      skip();
      const d = text.charCodeAt(i);
      if (d === 0x2c) {
        i++;
        if (top.node.t === "obj") {
          skip();
          if (text.charCodeAt(i) !== 0x22) fail("expected a key");
          top.key = parseString();
          skip();
          if (text.charCodeAt(i) !== 0x3a) fail("expected ':'");
          i++;
        }
        break; // next value
      }
      if (d === (top.node.t === "obj" ? 0x7d : 0x5d)) {
        top.node.end = ++i;
        stack.pop();
        value = top.node;
        continue;
      }
      return fail(
        i >= text.length ? "unexpected end" : `expected ',' or '${top.node.t === "obj" ? "}" : "]"}'`,
      );
    }
    if (root !== undefined) break;
  }
  skip();
  if (i < text.length) fail("unexpected data after the document");
  return root;
}

/** A key folded as Go's encoding/json compares field names (Unicode simple folding, ASCII-relevant part). */
export function foldKey(k: string): string {
  return k.toLowerCase().replace(/\u017f/g, "s");
}

/** The member of `obj` that runc's decoder reads for field `key`: matched by folding, the last one wins. */
export function member(obj: JNode | undefined, key: string): JNode | undefined {
  if (obj?.t !== "obj") return undefined;
  const want = foldKey(key);
  for (let k = obj.members.length - 1; k >= 0; k--) {
    if (foldKey(obj.members[k]![0]) === want) return obj.members[k]![1];
  }
  return undefined;
}

/** The value at a path of fields (runc's matching at every level); `undefined` if absent or `null` on the way. */
export function at(node: JNode | undefined, path: readonly string[]): JNode | undefined {
  let n = node;
  for (const k of path) {
    n = member(n, k);
    if (n === undefined || n.t === "null") return undefined;
  }
  return n;
}

/** A string member's value (runc's matching), or `undefined` when absent or not a string. */
export function str(obj: JNode | undefined, key: string): string | undefined {
  const v = member(obj, key);
  return v?.t === "str" ? v.value : undefined;
}
