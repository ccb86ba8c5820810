/**
 * JSONC documents with positions: parse errors and validation errors say `file:line:column`.
 * Shared by the config file and declarative plugins.
 * @module
 */
import { getNodeValue, type Node, type ParseError, parseTree, stripComments } from "jsonc-parser";

/** jsonc-parser's error codes (its `ParseErrorCode`, a const enum its types do not let a module read). */
const Code = {
  InvalidSymbol: 1,
  InvalidNumberFormat: 2,
  PropertyNameExpected: 3,
  ValueExpected: 4,
  ColonExpected: 5,
  CommaExpected: 6,
  CloseBraceExpected: 7,
  CloseBracketExpected: 8,
  EndOfFileExpected: 9,
  InvalidCommentToken: 10,
  UnexpectedEndOfComment: 11,
  UnexpectedEndOfString: 12,
  UnexpectedEndOfNumber: 13,
  InvalidUnicode: 14,
  InvalidEscapeCharacter: 15,
  InvalidCharacter: 16,
} as const;
import { GpuctlError } from "../errors/mod.ts";

export type { Node };

/** `line:column` (1-based) of an offset in text. */
export function lineCol(text: string, offset: number): string {
  let line = 1, col = 1;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text[i] === "\n") {
      line++;
      col = 1;
    } else col++;
  }
  return `${line}:${col}`;
}

/** A parsed JSONC object with a way to name positions in errors. */
export interface JsoncDoc {
  file: string;
  text: string;
  /** The top-level object node, or `null` for an empty (or comments-only) document. */
  root: Node | null;
  /** `file:line:col` of a node. */
  where(node: Node): string;
  /** The plain value of a node. */
  value(node: Node): unknown;
  /** The source text of a node, shortened, for error messages. */
  excerpt(node: Node): string;
  /** An error at a node. */
  fail(node: Node, why: string): never;
}

/** A JSONC parse error in words: what was found, or what was missing, at that position. */
function inWords(e: ParseError, text: string): string {
  const at = text[e.offset];
  const atEnd = e.offset >= text.trimEnd().length;
  switch (e.error as number) {
    case Code.InvalidSymbol:
      return at === undefined
        ? "the text ends too early"
        : /[A-Za-z_]/.test(at)
        ? `unexpected ${JSON.stringify(at)} (names and strings need double quotes)`
        : `unexpected ${JSON.stringify(at)}`;
    case Code.InvalidNumberFormat:
      return "a malformed number";
    case Code.PropertyNameExpected:
      return "expected a property name in double quotes";
    case Code.ValueExpected:
      return atEnd ? "the text ends where a value was expected" : "expected a value";
    case Code.ColonExpected:
      return "expected ':' after the property name";
    case Code.CommaExpected:
      return "expected ',' between two items";
    case Code.CloseBraceExpected:
      return atEnd ? "the text ends before the object's closing '}'" : "expected '}' or ','";
    case Code.CloseBracketExpected:
      return atEnd ? "the text ends before the list's closing ']'" : "expected ']' or ','";
    case Code.EndOfFileExpected:
      return "more text after the object's closing '}'";
    case Code.InvalidCommentToken:
      return "a malformed comment";
    case Code.UnexpectedEndOfComment:
      return "a /* comment that is never closed";
    case Code.UnexpectedEndOfString:
      return 'a string that is never closed (a missing ")';
    case Code.UnexpectedEndOfNumber:
      return "a number cut short";
    case Code.InvalidUnicode:
      return "a \\u escape without four hex digits";
    case Code.InvalidEscapeCharacter:
      return "an escape that JSON does not have (after \\)";
    case Code.InvalidCharacter:
      return "a control character inside a string (write it escaped)";
    default:
      return "not valid JSONC here";
  }
}

/** Whether text looks like TOML (a `[table]` or `key = value` line first): NVIDIA's config.toml given by mistake. */
function looksLikeToml(text: string): boolean {
  const first = stripComments(text).split("\n").map((l) => l.trim()).find((l) =>
    l !== "" && !l.startsWith("#")
  );
  return first !== undefined &&
    (/^\[[A-Za-z0-9_.\-" ]+\]$/.test(first) || /^[A-Za-z0-9_.\-"]+\s*=/.test(first));
}

/**
 * Parses JSONC text that must hold one object (or nothing). Comments and trailing commas are allowed, and so is
 * a UTF-8 byte-order mark (editors write one); errors are in words, with the position.
 */
export function parseJsoncObject(text: string, file: string): JsoncDoc {
  // The mark is dropped: columns are then those an editor shows, which does not show the mark.
  if (text.startsWith("\uFEFF")) text = text.slice(1);
  const where = (n: Node) => `${file}:${lineCol(text, n.offset)}`;
  const doc: JsoncDoc = {
    file,
    text,
    root: null,
    where,
    value: (n) => getNodeValue(n),
    excerpt: (n) => {
      const s = text.slice(n.offset, n.offset + n.length);
      return s.length > 40 ? s.slice(0, 37) + "..." : s;
    },
    fail: (n, why) => {
      throw new GpuctlError(where(n), why);
    },
  };
  if (stripComments(text).trim() === "") return doc;
  const errors: ParseError[] = [];
  const tree = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false });
  if (errors.length > 0) {
    const e = errors[0]!;
    if (looksLikeToml(text)) {
      throw new GpuctlError(
        file,
        "is TOML, not JSONC: gpuctl's configuration is JSONC (for NVIDIA's config.toml, 'gpuctl config --from-nvidia' writes the equivalent)",
      );
    }
    throw new GpuctlError(
      `${file}:${lineCol(text, e.offset)}`,
      `not valid JSONC: ${inWords(e, text)} ('gpuctl config --default' shows a valid file)`,
    );
  }
  if (tree === undefined || tree.type !== "object") {
    throw new GpuctlError(`${file}:${lineCol(text, tree?.offset ?? 0)}`, "must be a JSON object");
  }
  doc.root = tree;
  return doc;
}

/** The properties of an object node as [key node, value node] pairs. */
export function properties(obj: Node): [Node, Node][] {
  return (obj.children ?? []).map((p) => p.children as [Node, Node]);
}
