/**
 * CDI spec files are anyone's (another vendor's, a broken one): each one that cannot be used is one line naming
 * the file, whatever its shape, and one nested a million deep is refused before a parser sees it.
 */
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { tempDir } from "../helpers.ts";
import { cdiRegistry, loadSpecs, prepareYaml, resolveCdi } from "../../cdi/resolve.ts";
import { GpuctlError } from "../../errors/mod.ts";

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
  // This isolate's heap, not the process's resident set: `deno test --parallel` runs other test files in the
  // same process, whose memory comes and goes meanwhile. A parser over the JSON alone grows it by about 70 MiB.
  const before = Deno.memoryUsage().heapTotal;
  const errors: string[] = [];
  assertEquals(loadSpecs([t.path], errors), []);
  assertEquals(errors, [
    `${t.path}/deep.json: nests deeper than 64 levels: not a CDI spec; ignored`,
    `${t.path}/deep.yaml: nests deeper than 64 levels: not a CDI spec; ignored`,
  ]);
  assert(Deno.memoryUsage().heapTotal - before < 16 << 20, "no parser ran over it");
});

Deno.test("CDI registry: two specs in one directory make a name unresolvable, whatever a later directory says", () => {
  using t = tempDir();
  const [a, b, c] = ["a", "b", "c"].map((d) => `${t.path}/${d}`) as [string, string, string];
  for (const d of [a, b, c]) Deno.mkdirSync(d);
  const spec = (names: string[], env: string) => ({
    ...GOOD,
    devices: names.map((name) => ({ name, containerEdits: { env: [env] } })),
  });
  // a: one spec; b: two specs that both define "1" (and one each of "0" and "2"); c: a later one defining "1".
  Deno.writeTextFileSync(`${a}/nvidia.json`, JSON.stringify(spec(["0", "1", "3"], "FROM=a")));
  Deno.writeTextFileSync(`${b}/one.json`, JSON.stringify(spec(["0", "1"], "FROM=b1")));
  Deno.writeTextFileSync(`${b}/two.json`, JSON.stringify(spec(["1", "2"], "FROM=b2")));
  Deno.writeTextFileSync(`${c}/late.json`, JSON.stringify(spec(["1"], "FROM=c")));
  const r = cdiRegistry(loadSpecs([a, b, c]));
  assertEquals([...r.devices.keys()], ["nvidia.com/gpu=0", "nvidia.com/gpu=3", "nvidia.com/gpu=2"]);
  assertEquals(r.devices.get("nvidia.com/gpu=0")!.edits.env, ["FROM=b1"], "a later directory wins");
  assertEquals([...r.conflicts], [["nvidia.com/gpu=1", [`${b}/one.json`, `${b}/two.json`]]]);
  const e = assertThrows(() => resolveCdi([a, b, c], ["nvidia.com/gpu=1"]), GpuctlError);
  assertEquals(
    e.message,
    `CDI device "nvidia.com/gpu=1": defined by 2 CDI specs in one directory (${b}/one.json, ${b}/two.json), so no engine can resolve it (Podman: "unresolvable CDI devices"); remove all but one`,
  );
  // The names that do not clash still resolve.
  assertEquals(resolveCdi([a, b, c], ["nvidia.com/gpu=2"]).edits.map((x) => x.env), [["FROM=b2"]]);
});
