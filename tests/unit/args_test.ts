/**
 * gpuctl's command-line parser (`cli/args.ts`) against `node:util` `parseArgs`, which it stands in for: the same
 * values, positionals and error, for random command lines over gpuctl's own option tables and one made to collide
 * (seeded, so a failure repeats).
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { assertEquals, assertThrows } from "../assert.ts";
import { ArgvError, parse, parseArgv } from "../../cli/args.ts";
import { UsageError } from "../../errors/mod.ts";
import { rng } from "../helpers.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** `cdi generate`'s table (strings, lists, booleans, -h), as cli/cdi.ts has it. */
const CDI_GENERATE: Options = {
  "driver-root": { type: "string" },
  "library-search-path": { type: "string", multiple: true },
  output: { type: "string" },
  "device-name-strategy": { type: "string", multiple: true },
  "no-hook": { type: "boolean" },
  help: { type: "boolean", short: "h" },
};
/** `config`'s (one-letter strings and booleans, positionals), as cli/config.ts has it. */
const CONFIG: Options = {
  default: { type: "boolean" },
  "in-place": { type: "boolean", short: "i" },
  output: { type: "string", short: "o" },
  file: { type: "string", short: "c" },
  help: { type: "boolean", short: "h" },
};
/** One that collides: a long name that is another's letter, a repeatable boolean, a key Object has. */
const ODD: Options = {
  x: { type: "string" },
  verbose: { type: "boolean", short: "v", multiple: true },
  name: { type: "string", short: "n", multiple: true },
  toString: { type: "boolean" as const },
};

function words(options: Options): string[] {
  const w = ["v", "", "-", "--", "-x", "--x", "a=b", "=", "--=x", "---x", "-=", "__proto__", "--__proto__"];
  w.push("--__proto__=1", "--constructor", "--toString", "--nope", "--nope=1", "-z", "-zh", "-hz", "--h");
  for (const [name, o] of Object.entries(options)) {
    w.push(`--${name}`, `--${name}=`, `--${name}=v`, `--${name}=-v`, `--${name}=a=b`);
    if (o.short) {
      const s = o.short;
      w.push(`-${s}`, `-${s}v`, `-${s}-v`, `-${s}=v`);
      for (const o2 of Object.values(options)) if (o2.short) w.push(`-${s}${o2.short}`, `-${s}${o2.short}v`);
    }
  }
  return w;
}

/** What a parser made of `args`: its values and positionals, or its error's message. */
function outcome(f: () => { values: Record<string, unknown>; positionals: string[] }): unknown {
  try {
    const r = f();
    return {
      values: Object.entries(r.values),
      proto: Object.getPrototypeOf(r.values),
      positionals: r.positionals,
    };
  } catch (e) {
    return { error: (e as Error).message, type: (e as Error).name };
  }
}

for (
  const [label, options] of [["cdi generate", CDI_GENERATE], ["config", CONFIG], ["colliding", ODD]] as const
) {
  for (const allowPositionals of [false, true]) {
    Deno.test(`parseArgv agrees with node:util parseArgs: ${label}'s options, positionals ${allowPositionals ? "allowed" : "refused"} (seeded)`, () => {
      const w = words(options);
      const rand = rng(label.length * 1000 + (allowPositionals ? 1 : 0));
      let errors = 0;
      for (let i = 0; i < 4000; i++) {
        const args = Array.from({ length: rand.int(6) }, () => rand.pick(w));
        const want = outcome(() => parseArgs({ args, options, strict: true, allowPositionals }));
        const got = outcome(() => parseArgv(args, options, allowPositionals));
        assertEquals(got, want, `args ${JSON.stringify(args)}`);
        if ("error" in (want as object)) errors++;
      }
      // Both halves were exercised: command lines parsed, and command lines refused.
      assertEquals(errors > 400 && errors < 3600, true, `${errors} of 4000 refused`);
    });
  }
}

Deno.test("parse: parseArgs's refusal as one usage line naming the command, without its advice on '--'", () => {
  const e = assertThrows(() => parse("cdi", ["--nope"], CDI_GENERATE, true), UsageError);
  assertEquals(e.message, "cdi: Unknown option --nope (see 'gpuctl cdi --help')");
  const m = assertThrows(() => parse("config", ["-o"], CONFIG), UsageError);
  assertEquals(
    m.message,
    "config: Option -o, --output <value> argument missing (see 'gpuctl config --help')",
  );
  assertEquals(parse("config", ["-io", "f", "x"], CONFIG, true), {
    values: Object.assign(Object.create(null), { "in-place": true, output: "f" }),
    positionals: ["x"],
  });
  assertThrows(() => parseArgv(["x"], CONFIG, false), ArgvError, "Unexpected argument 'x'");
});
