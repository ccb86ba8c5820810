/**
 * `gpuctl config`: the effective configuration, each value with where it came from (the file and line that set it,
 * or the default); `--default` prints a commented default file, every key with its meaning and default.
 * @module
 */
import { parse } from "./args.ts";
import type { Context } from "./context.ts";
import { DEFAULT_CONFIG_PATH, SCHEMA } from "../config/schema.ts";
import { readConfigText } from "../config/read.ts";
import { parseJsoncObject, properties } from "../config/jsonc.ts";
import { exists } from "../ffi/libc.ts";

export const HELP = `Usage: gpuctl config [--json]
       gpuctl config --default

Prints the effective configuration: every key, its value, and where the value came from (FILE:LINE, or
"default"). The file is --config FILE, $GPUCTL_CONFIG, or ${DEFAULT_CONFIG_PATH} when it exists.
--default prints a default configuration file, every key commented out with its meaning and default:
  gpuctl config --default > ${DEFAULT_CONFIG_PATH}
`;

/** The commented default configuration file. */
export function defaultFile(): string {
  const lines = [
    `// gpuctl configuration (${DEFAULT_CONFIG_PATH}, or --config FILE, or $GPUCTL_CONFIG): JSONC.`,
    "// Every key is optional; each is shown commented out, with its default. Uncomment to change one.",
    "{",
  ];
  for (const [key, spec] of Object.entries(SCHEMA)) {
    lines.push(`  // ${spec.doc}`, `  // ${JSON.stringify(key)}: ${JSON.stringify(spec.default)},`, "");
  }
  if (lines.at(-1) === "") lines.pop();
  lines.push("}", "");
  return lines.join("\n");
}

export async function run(ctx: Context, args: string[]): Promise<number> {
  const { values } = await parse("config", args, {
    json: { type: "boolean" },
    default: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    ctx.out(HELP);
    return 0;
  }
  if (values.default) {
    ctx.out(defaultFile());
    return 0;
  }
  const config = ctx.config as unknown as Record<string, unknown>; // a broken file fails here, with its line
  const r = readConfigText(ctx.globals.configPath, exists);
  const source: Record<string, string> = {};
  if (r !== null) {
    const doc = parseJsoncObject(r.text, r.file);
    if (doc.root !== null) {
      for (const [k] of properties(doc.root)) source[k.value as string] = doc.where(k).replace(/:\d+$/, "");
    }
  }
  const rows = Object.keys(SCHEMA).map((k) => ({ key: k, value: config[k], from: source[k] ?? "default" }));
  if (values.json) {
    ctx.out(
      JSON.stringify(
        {
          file: r?.file ?? null,
          config: Object.fromEntries(rows.map((x) => [x.key, { value: x.value, from: x.from }])),
        },
        null,
        2,
      ) + "\n",
    );
    return 0;
  }
  ctx.out(
    `# ${r === null ? `no configuration file (${DEFAULT_CONFIG_PATH} is absent): defaults` : r.file}\n`,
  );
  const w = Math.max(...rows.map((x) => x.key.length));
  for (const x of rows) ctx.out(`${x.key.padEnd(w)}  ${JSON.stringify(x.value)}  # ${x.from}\n`);
  return 0;
}
