/**
 * CDI spec files are anyone's (another vendor's, a broken one): each one that cannot be used is one line naming
 * the file, whatever its shape, and one nested a million deep is refused before a parser sees it.
 */
import { assert, assertEquals } from "../assert.ts";
import { tempDir } from "../helpers.ts";
import { loadSpecs, prepareYaml } from "../../cdi/resolve.ts";

const GOOD = {
  cdiVersion: "0.5.0",
  kind: "nvidia.com/gpu",
  devices: [{ name: "0", containerEdits: { env: ["A=1"] } }],
};

Deno.test("CDI specs: every malformed one is one line naming its file; the good one is read", async () => {
  using t = tempDir();
  const bad: Record<string, unknown> = {
    "top-array.json": [],
    "devices-string.json": { ...GOOD, devices: "nope" },
    "device-null.json": { ...GOOD, devices: [null] },
    "edits-list.json": { ...GOOD, devices: [{ name: "0", containerEdits: [] }] },
    "env-number.json": { ...GOOD, devices: [{ name: "0", containerEdits: { env: [7] } }] },
    "nodes-string.json": { ...GOOD, containerEdits: { deviceNodes: "x" } },
    "hook-args.json": {
      ...GOOD,
      containerEdits: { hooks: [{ hookName: "createContainer", path: "/x", args: "a" }] },
    },
    "kind-number.json": { ...GOOD, kind: 3 },
  };
  for (const [f, v] of Object.entries(bad)) Deno.writeTextFileSync(`${t.path}/${f}`, JSON.stringify(v));
  Deno.writeTextFileSync(`${t.path}/truncated.json`, JSON.stringify(GOOD).slice(0, 40));
  Deno.writeTextFileSync(`${t.path}/tabs.yaml`, "cdiVersion: 0.5.0\n\tkind: x\n");
  Deno.writeTextFileSync(`${t.path}/good.json`, JSON.stringify(GOOD));
  await prepareYaml([t.path]);
  const errors: string[] = [];
  const specs = loadSpecs([t.path], errors);
  assertEquals(specs.map((s) => s.file), [`${t.path}/good.json`]);
  assertEquals(errors.length, Object.keys(bad).length + 2);
  for (const e of errors) {
    assert(e.startsWith(`${t.path}/`), e);
    assertEquals(e.includes("\n"), false, e);
    assert(!/TypeError|is not a function|undefined|Cannot read/.test(e), e);
  }
});

Deno.test("CDI specs: one nested a million deep is refused before parsing, in one line, with little memory", async () => {
  using t = tempDir();
  const depth = 1_000_000;
  Deno.writeTextFileSync(
    `${t.path}/deep.yaml`,
    `cdiVersion: 0.5.0\nkind: x.com/y\ndevices: ${"[".repeat(depth)}${"]".repeat(depth)}\n`,
  );
  Deno.writeTextFileSync(
    `${t.path}/deep.json`,
    `{"cdiVersion": "0.5.0", "kind": "x.com/y", "devices": ${"[".repeat(depth)}${"]".repeat(depth)}}`,
  );
  await prepareYaml([t.path]);
  const before = Deno.memoryUsage().rss;
  const errors: string[] = [];
  assertEquals(loadSpecs([t.path], errors), []);
  assertEquals(errors, [
    `${t.path}/deep.json: nests deeper than 64 levels: not a CDI spec; ignored`,
    `${t.path}/deep.yaml: nests deeper than 64 levels: not a CDI spec; ignored`,
  ]);
  assert(Deno.memoryUsage().rss - before < 64 << 20, "no parser ran over it");
});
