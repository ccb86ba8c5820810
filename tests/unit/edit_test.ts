import { assertEquals, assertThrows } from "../assert.ts";
import { addToLists, locateContainers, writeAtomic } from "../../oci/edit.ts";
import { GpuctlError } from "../../errors/mod.ts";
import { tempDir } from "../helpers.ts";

// config.json as runc and containerd write it: compact, with a number JSON.parse cannot hold exactly.
const TEXT = '{"ociVersion":"1.2.0","process":{"env":["PATH=/bin","A=1"],"cwd":"/"},' +
  '"mounts":[{"destination":"/proc","type":"proc","source":"proc","x":18446744073709551615}],' +
  '"linux":{"devices":[],"namespaces":[{"type":"mount"}]}}';

Deno.test("addToLists() appends before the closing bracket and keeps every other byte", () => {
  const doc = JSON.parse(TEXT);
  const out = addToLists(TEXT, doc, [
    { path: ["process", "env"], items: ["NVIDIA_VISIBLE_DEVICES=0"] },
    { path: ["mounts"], items: [{ destination: "/usr/bin/nvidia-smi", type: "bind" }] },
    { path: ["linux", "devices"], items: [{ path: "/dev/nvidia0", major: 195 }, { path: "/dev/nvidiactl" }] },
  ]);
  assertEquals(
    out,
    '{"ociVersion":"1.2.0","process":{"env":["PATH=/bin","A=1","NVIDIA_VISIBLE_DEVICES=0"],"cwd":"/"},' +
      '"mounts":[{"destination":"/proc","type":"proc","source":"proc","x":18446744073709551615},' +
      '{"destination":"/usr/bin/nvidia-smi","type":"bind"}],' +
      '"linux":{"devices":[{"path":"/dev/nvidia0","major":195},{"path":"/dev/nvidiactl"}],' +
      '"namespaces":[{"type":"mount"}]}}',
  );
  JSON.parse(out);
});

Deno.test("addToLists() creates a missing list, and its missing parents", () => {
  const text = '{"process":{"env":[]},"linux":{}}';
  const out = addToLists(text, JSON.parse(text), [
    { path: ["linux", "resources", "devices"], items: [{ allow: true, type: "c", major: 195 }] },
    { path: ["hooks", "prestart"], items: [{ path: "/bin/hook" }] },
  ]);
  assertEquals(
    out,
    '{"process":{"env":[]},"linux":{"resources":{"devices":[{"allow":true,"type":"c","major":195}]}},' +
      '"hooks":{"prestart":[{"path":"/bin/hook"}]}}',
  );
  // Two missing lists under one missing parent become one object; a present list next to them is appended to.
  const t2 = '{"ociVersion":"1.2.0", "x": 18446744073709551615, "mounts": [ ]}';
  assertEquals(
    addToLists(t2, JSON.parse(t2), [
      { path: ["linux", "devices"], items: [{ path: "/dev/nvidia0" }] },
      { path: ["linux", "resources", "devices"], items: [{ allow: true }] },
      { path: ["mounts"], items: [{ destination: "/x" }] },
    ]),
    '{"ociVersion":"1.2.0", "x": 18446744073709551615, "mounts": [ {"destination":"/x"}],' +
      '"linux":{"devices":[{"path":"/dev/nvidia0"}],"resources":{"devices":[{"allow":true}]}}}',
  );
});

Deno.test("addToLists() refuses to create a list under something that is not an object", () => {
  for (
    const [text, what] of [['{"linux": null}', '"linux"'], ['{"linux": [1]}', '"linux"'], ["[]", '"(top)"']]
  ) {
    assertThrows(
      () => addToLists(text!, JSON.parse(text!), [{ path: ["linux", "devices"], items: [1] }]),
      GpuctlError,
      `${what} is not an object`,
    );
  }
});

Deno.test("addToLists() leaves out items already there, and the text alone when nothing is new", () => {
  const doc = JSON.parse(TEXT);
  const sameName = (a: unknown, b: unknown) => String(a).split("=")[0] === String(b).split("=")[0];
  assertEquals(addToLists(TEXT, doc, [{ path: ["process", "env"], items: ["A=2"], same: sameName }]), TEXT);
  assertEquals(addToLists(TEXT, doc, [{ path: ["linux", "namespaces"], items: [{ type: "mount" }] }]), TEXT);
  const out = addToLists(TEXT, doc, [{ path: ["process", "env"], items: ["A=2", "B=3"], same: sameName }]);
  assertEquals(JSON.parse(out).process.env, ["PATH=/bin", "A=1", "B=3"]);
});

Deno.test("addToLists() refuses a path that is not a list", () => {
  assertThrows(
    () => addToLists(TEXT, JSON.parse(TEXT), [{ path: ["process", "cwd"], items: ["x"] }]),
    GpuctlError,
    '"process.cwd" is not a list',
  );
});

Deno.test("writeAtomic() replaces a file whole, keeps its mode, and leaves no temporary file", () => {
  using dir = tempDir();
  const file = `${dir.path}/config.json`;
  Deno.writeTextFileSync(file, "old", { mode: 0o600 });
  Deno.chmodSync(file, 0o600);
  writeAtomic(file, "new");
  writeAtomic(file, "newer");
  assertEquals(Deno.readTextFileSync(file), "newer");
  assertEquals((Deno.statSync(file).mode ?? 0) & 0o777, 0o600);
  assertEquals([...Deno.readDirSync(dir.path)].map((e) => e.name), ["config.json"]);
});

Deno.test("locateContainers() finds lists and objects past strings with brackets and escapes, nested, and empty", () => {
  const text =
    '{ "a": "x]\\"}[", "b" : [ [1, 2], {"c": []}, "]" ],\n "d": {"e": [ ], "f": [true, null, -1.5e3]} }';
  const at = locateContainers(text, [
    ["b"],
    ["b", 0],
    ["b", 1, "c"],
    ["d", "e"],
    ["d", "f"],
    ["a"],
    ["zz"],
    [],
    ["d"],
    ["b", 1],
  ]);
  const expect = (path: (string | number)[], close: number, empty: boolean) =>
    assertEquals(at.get(JSON.stringify(path)), { close, empty }, JSON.stringify(path));
  expect(["b"], text.indexOf('"]" ]') + 4, false);
  expect(["b", 0], text.indexOf("2]") + 1, false);
  expect(["b", 1, "c"], text.indexOf("[]}") + 1, true);
  expect(["d", "e"], text.indexOf("[ ]") + 2, true);
  expect(["d", "f"], text.indexOf("3]") + 1, false);
  expect([], text.length - 1, false);
  expect(["d"], text.lastIndexOf("}", text.length - 2), false);
  expect(["b", 1], text.indexOf("[]}") + 2, false);
  assertEquals(at.has(JSON.stringify(["a"])), false);
  assertEquals(at.size, 8);
  assertEquals(locateContainers("{ }", [[]]).get("[]"), { close: 2, empty: true });
});
