import { assert, assertEquals, assertStringIncludes, assertThrows } from "../assert.ts";
import { DEFAULT_CONFIG_PATH, defaultConfig, loadConfig, parseConfig } from "../../config/config.ts";
import { jsoncToJson, quickConfig, readConfigText } from "../../config/read.ts";
import { GpuctlError } from "../../errors/mod.ts";
import { tempDir, writeFile } from "../helpers.ts";

Deno.test("parseConfig() fills defaults for an empty file and an empty object", () => {
  assertEquals(parseConfig("", "c.jsonc"), defaultConfig());
  assertEquals(parseConfig("{}", "c.jsonc"), defaultConfig());
  assertEquals(defaultConfig(), {
    driverRoot: "/",
    devRoot: "/dev",
    procRoot: "/proc",
    sysRoot: "/sys",
    nvmlLibrary: "libnvidia-ml.so.1",
    logFile: null,
    logLevel: "info",
    pluginsDir: "/etc/gpuctl/plugins.d",
    libraryDirs: [],
    binaryDirs: [
      "/usr/bin",
      "/usr/sbin",
      "/bin",
      "/sbin",
      "/usr/local/bin",
      "/usr/local/sbin",
      "/usr/local/nvidia/bin",
    ],
    acceptEnvWhenUnprivileged: true,
    acceptVolumeMounts: false,
    disableRequire: false,
    swarmResource: [],
    cdiAnnotationPrefixes: ["cdi.k8s.io/"],
    cdiKinds: ["nvidia.com/gpu"],
    cdiAnnotationKinds: [],
    cdiSpecDirs: ["/etc/cdi", "/var/run/cdi"],
    cudaCompat: true,
    noCgroups: false,
    nvmlTimeout: 10,
    cacheDir: "/run/gpuctl",
    mode: "spec",
    runtimes: ["runc", "crun"],
    hookPath: null,
  });
  // Defaults are fresh copies: changing one config's list does not change the next one's.
  defaultConfig().binaryDirs.push("/x");
  assertEquals(defaultConfig().binaryDirs.includes("/x"), false);
});

Deno.test("parseConfig() accepts comments and trailing commas, and keeps unknown-free values", () => {
  const c = parseConfig(
    `// host paths
{
  /* a containerized driver */
  "driverRoot": "/run/nvidia/driver",
  "logFile": "/var/log/gpuctl.log",
  "logLevel": "debug",
}`,
    "c.jsonc",
  );
  assertEquals(c.driverRoot, "/run/nvidia/driver");
  assertEquals(c.logFile, "/var/log/gpuctl.log");
  assertEquals(c.logLevel, "debug");
  assertEquals(c.devRoot, "/dev");
});

Deno.test("parseConfig() names the file, line and key of an unknown key", () => {
  const e = assertThrows(
    () => parseConfig('{\n  "driverRoot": "/",\n  "driverroot": "/x"\n}', "/etc/g.jsonc"),
    GpuctlError,
  );
  assertEquals(e.what, "/etc/g.jsonc:3:3");
  assertEquals(e.why.startsWith('unknown key "driverroot" (known keys: driverRoot, devRoot'), true);
});

Deno.test("parseConfig() rejects wrong types with the key and what it must be", () => {
  const cases: [string, string][] = [
    ['{"driverRoot": 5}', '"driverRoot" must be an absolute path, not 5'],
    ['{"driverRoot": "relative/dir"}', '"driverRoot" must be an absolute path, not "relative/dir"'],
    ['{"logLevel": "loud"}', '"logLevel" must be one of "debug", "info", "warn", "error", not "loud"'],
    ['{"logFile": false}', '"logFile" must be an absolute path or null, not false'],
    ['{"nvmlLibrary": ["a"]}', '"nvmlLibrary" must be a string, not ["a"]'],
    ['{"nvmlLibrary": ""}', '"nvmlLibrary" must be a string, not ""'],
    ['{"libraryDirs": "/usr/lib"}', '"libraryDirs" must be a list of absolute paths, not "/usr/lib"'],
    ['{"binaryDirs": ["bin"]}', '"binaryDirs" must be a list of absolute paths, not ["bin"]'],
    ['{"acceptVolumeMounts": "yes"}', '"acceptVolumeMounts" must be true or false, not "yes"'],
    ['{"mode": "cdi"}', '"mode" must be one of "spec", "hook", not "cdi"'],
    ['{"runtimes": []}', '"runtimes" must be a non-empty list of names or absolute paths, not []'],
    [
      '{"runtimes": ["bin/runc"]}',
      '"runtimes" must be a non-empty list of names or absolute paths, not ["bin/runc"]',
    ],
  ];
  for (const [text, why] of cases) {
    const e = assertThrows(() => parseConfig(text, "f"), GpuctlError);
    assertEquals(e.why, why, text);
    assertEquals(e.what, "f:1:2");
  }
  assertEquals(parseConfig('{"logFile": null}', "f").logFile, null);
});

Deno.test("parseConfig() reports syntax errors with a position", () => {
  const e = assertThrows(
    () => parseConfig('{\n  "driverRoot": "/"\n  "devRoot": "/dev"\n}', "f"),
    GpuctlError,
  );
  assertEquals(e.what, "f:3:3");
  assertEquals(e.why, "not valid JSONC: expected ',' between two items" + FIX);
  const top = assertThrows(() => parseConfig("[1]", "f"), GpuctlError);
  assertEquals(top.why, "must be a JSON object");
});

const FIX = " ('gpuctl config --default' shows a valid file)";

Deno.test("parseConfig(): every syntax error in words with its position; a BOM read; TOML named", async () => {
  const why = (text: string) => {
    const e = assertThrows(() => parseConfig(text, "f"), GpuctlError);
    return `${e.what} ${e.why.replace(FIX, "")}`;
  };
  assertEquals(
    why('{"driverRoot": "/"'),
    "f:1:19 not valid JSONC: the text ends before the object's closing '}'",
  );
  assertEquals(why('{"a": "x\n'), 'f:1:7 not valid JSONC: a string that is never closed (a missing ")');
  assertEquals(why('{"a": 1}}'), "f:1:9 not valid JSONC: more text after the object's closing '}'");
  assertEquals(why('{"a": @}'), 'f:1:7 not valid JSONC: unexpected "@"');
  assertEquals(
    why('{"a": 1, b: 2}'),
    'f:1:10 not valid JSONC: unexpected "b" (names and strings need double quotes)',
  );
  assertEquals(why('{"a" 1}'), "f:1:6 not valid JSONC: expected ':' after the property name");
  assertEquals(why('{"a": "\\q"}'), "f:1:7 not valid JSONC: an escape that JSON does not have (after \\)");
  assertEquals(why('{"a": 1 /* x'), "f:1:9 not valid JSONC: a /* comment that is never closed");
  assertEquals(
    why('[nvidia-container-cli]\nroot = "/"\n'),
    "f is TOML, not JSONC: gpuctl's configuration is JSONC (for NVIDIA's config.toml, 'gpuctl config --from-nvidia' writes the equivalent)",
  );
  assertEquals(parseConfig('\uFEFF{"driverRoot": "/x"}', "f").driverRoot, "/x", "a byte-order mark is read");
  assertEquals(
    why('\uFEFF{"driverRoot": 1 "x": 2}').split(" ")[0],
    "f:1:18",
    "columns as an editor shows them",
  );
  // The codes the words are keyed on are jsonc-parser's own.
  const codes = (await import("jsonc-parser") as unknown as { ParseErrorCode: Record<string, number> })
    .ParseErrorCode;
  assertEquals([codes.InvalidSymbol, codes.CommaExpected, codes.InvalidCharacter], [1, 6, 16]);
});

Deno.test("loadConfig() uses defaults when the default file is absent, and fails on a missing explicit file", () => {
  using d = tempDir();
  const missing = `${d.path}/nope.jsonc`;
  const e = assertThrows(() => loadConfig(missing), GpuctlError);
  assertEquals(e.what, `config ${missing}`);
  const p = writeFile(d.path, "c.jsonc", '{"devRoot": "/fixture/dev"}');
  assertEquals(loadConfig(p).config.devRoot, "/fixture/dev");
  assertEquals(loadConfig(p).file, p);
});

Deno.test("the fast config path agrees with the full parser: same config when valid, none when not", () => {
  const valid = [
    "",
    "  // only a comment\n",
    "/* a */ {}",
    '{"devRoot": "/d", // the fixture\n "runtimes": ["crun",],}',
    '{"mode": "hook" /* b */ , }',
    '{"logFile": "/var/log/a//b,]", "pluginsDir": "/p/*x*/"}',
    '{"runtimes": ["runc", /* x */ ], "libraryDirs": [ ],}',
    '{"logFile": null, "disableRequire": true}\n// trailing\n',
    '{"binaryDirs": ["/a", "/b",\n  // more later\n]}',
  ];
  for (const text of valid) {
    const quick = quickConfig(text);
    assert(quick !== null, `fast path refused ${JSON.stringify(text)}`);
    assertEquals(quick, parseConfig(text, "f"), text);
  }
  // Text with an escape goes to the full parser (this V8's JSON.parse can misname escaped keys), which reads it.
  const escaped = '{"nvmlLibrary": "lib\\"x//y,}"}';
  assertEquals(quickConfig(escaped), null);
  assertEquals(parseConfig(escaped, "f").nvmlLibrary, 'lib"x//y,}');
  const invalid = [
    '{\n  "driverRoot": "/"\n  "devRoot": "/dev"\n}',
    "[1]",
    "null",
    '"x"',
    '{"nope": 1}',
    '{"constructor": 1}',
    '{"__proto__": {}}',
    '{"runtimes": []}',
    '{"runtimes": ["bin/runc"]}',
    '{"devRoot": "dev"}',
    "{,}",
    '{"mode": "spec",,}',
    '{"devRoot": "/d"} x',
    '{"devRoot": "/d" // no close',
    "{'devRoot': '/d'}",
    '{"logLevel": "loud"}',
    '{"devRoot": "dev", "devRoot": "/dev"}',
  ];
  for (const text of invalid) {
    assertEquals(quickConfig(text), null, text);
    assertThrows(() => parseConfig(text, "f"), GpuctlError);
  }
  // Comments and the trailing comma become spaces: every offset stays where it was.
  assertEquals(jsoncToJson("[1, /* c */ ]// x"), "[1" + " ".repeat(10) + "]" + " ".repeat(4));
  // An unterminated comment is the full parser's to judge (it reads the rest as a comment).
  assertEquals(quickConfig('{"mode": "hook"} /* x'), null);
  // So is a key given twice: JSON.parse would keep the last, unchecked; the full parser checks each.
  assertEquals(quickConfig('{"devRoot": "/one", "devRoot": "/two"}'), null);
  assertEquals(parseConfig('{"devRoot": "/one", "devRoot": "/two"}', "f").devRoot, "/two");
});

Deno.test("unknown keys that name Object's own properties are reported as unknown", () => {
  const e = assertThrows(() => parseConfig('{"toString": "/x"}', "f"), GpuctlError);
  assertStringIncludes(e.why, 'unknown key "toString"');
});

Deno.test("readConfigText(): an absent default file is found absent without a read; an explicit one is always read", () => {
  const asked: string[] = [];
  const absent = (p: string) => (asked.push(p), false);
  assertEquals(readConfigText(undefined, absent), null);
  assertEquals(asked, [DEFAULT_CONFIG_PATH]);
  using d = tempDir();
  const p = writeFile(d.path, "c.jsonc", "{}");
  assertEquals(readConfigText(p, absent), { text: "{}", file: p });
  assertEquals(asked, [DEFAULT_CONFIG_PATH], "not consulted for an explicit file");
  assertThrows(() => readConfigText(`${d.path}/missing.jsonc`, absent), GpuctlError);
});

Deno.test("readConfigText(): a failing existence check falls back to reading the file", () => {
  const broken = (_: string): boolean => {
    throw new Error("no libc");
  };
  // No exception: the default file is read (or found missing) as if there were no check.
  const r = readConfigText(undefined, broken);
  assertEquals(r === null || r.file === DEFAULT_CONFIG_PATH, true);
  using d = tempDir();
  const p = writeFile(d.path, "c.jsonc", "{}");
  assertEquals(readConfigText(p, broken)?.text, "{}");
});

Deno.test("gpuctl config --default: a file that parses to the defaults, and to the defaults again uncommented", async () => {
  const { defaultFile } = await import("../../cli/config.ts");
  const text = defaultFile();
  assertEquals(parseConfig(text, "default.jsonc"), defaultConfig());
  const uncommented = text.replace(/^ {2}\/\/ (".*)$/gm, "  $1");
  assert(uncommented !== text && uncommented.includes('  "driverRoot": "/",'));
  assertEquals(parseConfig(uncommented, "default.jsonc"), defaultConfig());
});
