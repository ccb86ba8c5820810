/**
 * Finding things in TOML text without parsing it, for the one byte-exact edit gpuctl makes to a user's
 * config.toml (its `imports`): where a top-level key's value is, which lines lie inside a multi-line string, and
 * the span of an array. The result of every edit is parsed back by the TOML library and compared.
 * @module
 */

/** Where a top-level key's value starts in TOML text (`null` when absent), found by scanning the lines before the first table. */
export function topLevelKey(text: string, key: string): { line: number; valueAt: number } | null {
  let offset = 0;
  const lines = text.split("\n");
  const inString = linesInString(lines);
  for (const [i, line] of lines.entries()) {
    const t = line.trimStart();
    if (inString[i]) {
      offset += line.length + 1;
      continue;
    }
    if (t.startsWith("[")) return null;
    if (t.startsWith(key)) {
      const rest = t.slice(key.length).trimStart();
      if (rest.startsWith("=")) {
        return {
          line: i,
          valueAt: offset + (line.length - t.length) + key.length + t.slice(key.length).indexOf("=") + 1,
        };
      }
    }
    offset += line.length + 1;
  }
  return null;
}

/**
 * For each line, whether it begins inside a multi-line string (`"""` or `'''`): such a line holds no key, whatever
 * its text looks like.
 */
export function linesInString(lines: readonly string[]): boolean[] {
  const out: boolean[] = [];
  let open: string | null = null;
  for (const line of lines) {
    out.push(open !== null);
    for (let i = 0; i < line.length;) {
      if (open !== null) {
        if (open === '"""' && line[i] === "\\") i += 2;
        else if (line.startsWith(open, i)) i += 3, open = null;
        else i++;
        continue;
      }
      const c = line[i]!;
      if (c === "#") break;
      if (line.startsWith('"""', i) || line.startsWith("'''", i)) {
        open = line.slice(i, i + 3);
        i += 3;
      } else if (c === '"' || c === "'") {
        for (i++; i < line.length && line[i] !== c; i += c === '"' && line[i] === "\\" ? 2 : 1);
        i++;
      } else i++;
    }
  }
  return out;
}

/** The `[`…`]` span of the array value starting at `from` (strings and comments skipped), or `null`. */
export function arraySpan(text: string, from: number): { open: number; close: number } | null {
  let i = from;
  while (i < text.length && (text[i] === " " || text[i] === "\t")) i++;
  if (text[i] !== "[") return null;
  const open = i;
  let depth = 0;
  for (; i < text.length; i++) {
    const c = text[i]!;
    if (c === "#") {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (c === '"' || c === "'") {
      const triple = text.startsWith(c.repeat(3), i);
      const q = triple ? c.repeat(3) : c;
      i += q.length;
      while (i < text.length && !text.startsWith(q, i)) i += c === '"' && text[i] === "\\" ? 2 : 1;
      i += q.length - 1;
    } else if (c === "[") depth++;
    else if (c === "]" && --depth === 0) return { open, close: i };
  }
  return null;
}
