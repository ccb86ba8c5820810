/**
 * JSONC documents with positions: parse errors and validation errors say `file:line:column`.
 * Shared by the config file and declarative plugins.
 * @module
 */
import {
  getNodeValue,
  type Node,
  type ParseError,
  parseTree,
  printParseErrorCode,
  stripComments,
} from "jsonc-parser";
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

/** Parses JSONC text that must hold one object (or nothing). Comments and trailing commas are allowed. */
export function parseJsoncObject(text: string, file: string): JsoncDoc {
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
    throw new GpuctlError(
      `${file}:${lineCol(text, e.offset)}`,
      `invalid JSONC: ${printParseErrorCode(e.error)}`,
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
