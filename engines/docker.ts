/**
 * Docker's daemon.json: strict JSON, as dockerd reads it. gpuctl sets `runtimes.<name>.path` (and, asked,
 * `default-runtime`) by text edits that keep the rest of the file as it was, indented as the file is; a file dockerd
 * would refuse (comments, trailing commas, a `runtimes` that is not an object) is refused with its line and the fix,
 * and left untouched.
 * @module
 */
import {
  applyEdits,
  type FormattingOptions,
  modify,
  parse as parseJsonc,
  type ParseError,
  printParseErrorCode,
} from "jsonc-parser";
import { GpuctlError } from "../errors/mod.ts";
import { lineCol } from "../config/jsonc.ts";
import { createdMark, type FileChange, readIfExists, sameValue, undoByBackup } from "./files.ts";

export const DOCKER_CONFIG = "/etc/docker/daemon.json";

type Json = Record<string, unknown>;

/** daemon.json parsed as dockerd parses it; every refusal names the line and what to do. */
export function parseDaemonJson(text: string, file: string): Json {
  if (text.trim() === "") return {};
  const errors: ParseError[] = [];
  const doc = parseJsonc(text, errors, { disallowComments: true, allowTrailingComma: false });
  const e = errors[0];
  if (e !== undefined) {
    const before = text.slice(0, e.offset).trimEnd();
    const code = printParseErrorCode(e.error);
    const fix = code === "InvalidCommentToken"
      ? "dockerd reads strict JSON and refuses comments: remove it"
      : before.endsWith(",") &&
          (code === "PropertyNameExpected" || code === "ValueExpected")
      ? "dockerd reads strict JSON and refuses trailing commas: remove the comma before it"
      : "fix the JSON (dockerd would refuse this file too)";
    throw new GpuctlError(
      `${file}:${lineCol(text, e.offset)}`,
      `not valid JSON (${code}); ${fix}, then run gpuctl configure docker again`,
    );
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    throw new GpuctlError(file, "is not a JSON object; dockerd expects {...} at the top");
  }
  const runtimes = (doc as Json).runtimes;
  if (
    runtimes !== undefined && (runtimes === null || typeof runtimes !== "object" || Array.isArray(runtimes))
  ) {
    throw new GpuctlError(
      `${file}: "runtimes"`,
      'must be an object of runtime names, like {"nvidia": {"path": "/usr/local/bin/gpuctl-runtime"}}; fix it, then run gpuctl configure docker again',
    );
  }
  for (const [n, r] of Object.entries((runtimes ?? {}) as Json)) {
    if (r === null || typeof r !== "object" || Array.isArray(r)) {
      throw new GpuctlError(
        `${file}: "runtimes"."${n}"`,
        'must be an object, like {"path": "..."}; fix it first',
      );
    }
  }
  return doc as Json;
}

/** The file's own indentation (the first indented line's), for what gpuctl inserts. */
export function indentationOf(text: string): FormattingOptions {
  for (const line of text.split("\n")) {
    const ws = line.slice(0, line.length - line.trimStart().length);
    if (ws === "" || line.trim() === "") continue;
    if (ws.startsWith("\t")) return { insertSpaces: false, tabSize: 1, eol: "\n" };
    return { insertSpaces: true, tabSize: ws.length, eol: "\n" };
  }
  return { insertSpaces: true, tabSize: 2, eol: "\n" };
}

function set(text: string, path: string[], value: unknown): string {
  return applyEdits(text, modify(text, path, value, { formattingOptions: indentationOf(text) }));
}

export interface DockerOptions {
  file: string;
  name: string;
  path: string;
  setDefault: boolean;
  remove: boolean;
  /** Also let dockerd apply CDI specs itself (`features.cdi`, Docker 25 to 28.1; on by default from 28.2). */
  cdi?: boolean;
}

/** The change to daemon.json that registers (or, with `remove`, unregisters) the runtime. */
export function dockerChange(text: string | null, o: DockerOptions): FileChange {
  const doc = parseDaemonJson(text ?? "", o.file);
  const check = (t: string) => void parseDaemonJson(t, o.file);
  const runtimes = (doc.runtimes ?? {}) as Record<string, Json>;
  const mine = runtimes[o.name];
  if (o.remove) {
    if (text === null || text.trim() === "") return { file: o.file, before: text, after: text };
    const sameJson = (a: string, b: string) => {
      try {
        return sameValue(JSON.parse(a), JSON.parse(b));
      } catch { // not JSON: not the same
        return false;
      }
    };
    const backup = undoByBackup(
      o.file,
      text,
      (b) =>
        [false, true].flatMap((setDefault) =>
          [false, true].map((cdi) => dockerChange(b, { ...o, setDefault, cdi, remove: false }).after)
        ),
      sameJson,
    );
    if (backup !== null) {
      return { file: o.file, before: text, after: backup, check, restored: true, undo: true };
    }
    let out = text;
    const expected = structuredClone(doc);
    // gpuctl's entry: the path it would write, or a gpuctl-runtime elsewhere (installed with another --prefix).
    const path = typeof mine?.path === "string" ? mine.path : "";
    if (mine !== undefined && (path === o.path || path.endsWith("/gpuctl-runtime"))) {
      const rest = { ...runtimes };
      delete rest[o.name];
      if (Object.keys(rest).length === 0) {
        out = set(out, ["runtimes"], undefined);
        delete expected.runtimes;
      } else {
        out = set(out, ["runtimes", o.name], undefined);
        delete (expected.runtimes as Json)[o.name];
      }
    }
    if (doc["default-runtime"] === o.name) {
      out = set(out, ["default-runtime"], undefined);
      delete expected["default-runtime"];
    }
    assertMeans(out, expected, o.file);
    // A daemon.json gpuctl created, now empty again: it goes, as it came.
    if (Object.keys(expected).length === 0 && readIfExists(createdMark(o.file)) !== null) {
      return { file: o.file, before: text, after: null, undo: true };
    }
    return { file: o.file, before: text, after: out, check, undo: true };
  }
  if (text === null || text.trim() === "") {
    const fresh: Json = { runtimes: { [o.name]: { path: o.path } } };
    if (o.setDefault) fresh["default-runtime"] = o.name;
    if (o.cdi) fresh.features = { cdi: true };
    return { file: o.file, before: text, after: JSON.stringify(fresh, null, 2) + "\n", check };
  }
  let out = text;
  const expected = structuredClone(doc);
  if (mine === undefined) {
    out = set(out, ["runtimes", o.name], { path: o.path });
    expected.runtimes = { ...runtimes, [o.name]: { path: o.path } };
  } else if (mine.path !== o.path) {
    out = set(out, ["runtimes", o.name, "path"], o.path);
    (expected.runtimes as Record<string, Json>)[o.name] = { ...mine, path: o.path };
  }
  if (o.setDefault && doc["default-runtime"] !== o.name) {
    out = set(out, ["default-runtime"], o.name);
    expected["default-runtime"] = o.name;
  }
  const features = (doc.features ?? {}) as Json;
  if (o.cdi && features.cdi !== true) {
    out = set(out, ["features", "cdi"], true);
    expected.features = { ...features, cdi: true };
  }
  assertMeans(out, expected, o.file);
  return { file: o.file, before: text, after: out, check };
}

/** The edited text must mean exactly the intended document (a text edit must never change anything else). */
function assertMeans(text: string, expected: Json, file: string): void {
  let got: unknown;
  try {
    got = JSON.parse(text);
  } catch { // not JSON: compared as nothing, so the check below refuses it
    got = undefined;
  }
  if (!sameValue(got, expected)) {
    throw new GpuctlError(
      file,
      "the edit did not give the intended JSON; nothing was written (please report this)",
    );
  }
}
