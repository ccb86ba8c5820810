import { assertEquals, assertThrows } from "../assert.ts";
import { addToLists, type ListAddition, writeAtomic } from "../../oci/edit.ts";
import { type JNode, member, parseJson } from "../../oci/json.ts";
import { GpuctlError } from "../../errors/mod.ts";
import { tempDir } from "../helpers.ts";

// config.json as runc and containerd write it: compact, with a number JSON.parse cannot hold exactly.
const TEXT = '{"ociVersion":"1.2.0","process":{"env":["PATH=/bin","A=1"],"cwd":"/"},' +
  '"mounts":[{"destination":"/proc","type":"proc","source":"proc","x":18446744073709551615}],' +
  '"linux":{"devices":[],"namespaces":[{"type":"mount"}]}}';

/** An addition whose identity is the item's compact JSON (or `key` of it), compared with an existing item's text. */
function list(path: string[], items: unknown[], key?: (x: unknown) => string, text = TEXT): ListAddition {
  return {
    path,
    items,
    key: key ?? ((i) => JSON.stringify(i)),
    existing: (n: JNode) => (key ? key(JSON.parse(text.slice(n.start, n.end))) : text.slice(n.start, n.end)),
  };
}
const add = (text: string, additions: ListAddition[]) =>
  addToLists(text, parseJson(text, "config.json"), additions);

Deno.test("addToLists() appends before the closing bracket and keeps every other byte", () => {
  const out = add(TEXT, [
    list(["process", "env"], ["NVIDIA_VISIBLE_DEVICES=0"]),
    list(["mounts"], [{ destination: "/usr/bin/nvidia-smi", type: "bind" }]),
    list(["linux", "devices"], [{ path: "/dev/nvidia0", major: 195 }, { path: "/dev/nvidiactl" }]),
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
  const out = add(text, [
    list(["linux", "resources", "devices"], [{ allow: true, type: "c", major: 195 }], undefined, text),
    list(["hooks", "prestart"], [{ path: "/bin/hook" }], undefined, text),
  ]);
  assertEquals(
    out,
    '{"process":{"env":[]},"linux":{"resources":{"devices":[{"allow":true,"type":"c","major":195}]}},' +
      '"hooks":{"prestart":[{"path":"/bin/hook"}]}}',
  );
  // Two missing lists under one missing parent become one object; a present list next to them is appended to.
  const t2 = '{"ociVersion":"1.2.0", "x": 18446744073709551615, "mounts": [ ]}';
  assertEquals(
    add(t2, [
      list(["linux", "devices"], [{ path: "/dev/nvidia0" }], undefined, t2),
      list(["linux", "resources", "devices"], [{ allow: true }], undefined, t2),
      list(["mounts"], [{ destination: "/x" }], undefined, t2),
    ]),
    '{"ociVersion":"1.2.0", "x": 18446744073709551615, "mounts": [ {"destination":"/x"}],' +
      '"linux":{"devices":[{"path":"/dev/nvidia0"}],"resources":{"devices":[{"allow":true}]}}}',
  );
});

Deno.test("addToLists() refuses to create a list under something that is not an object; null is absent, as in Go", () => {
  for (const [text, what] of [['{"linux": [1]}', '"linux"'], ["[]", '"(top)"']]) {
    assertThrows(
      () => add(text!, [list(["linux", "devices"], [1], undefined, text)]),
      GpuctlError,
      `${what} is not an object`,
    );
  }
  // runc decodes "linux": null as no linux at all; the member added after it is the one runc reads.
  const out = add('{"linux": null}', [list(["linux", "devices"], [1], undefined, '{"linux": null}')]);
  assertEquals(out, '{"linux": null,"linux":{"devices":[1]}}');
});

Deno.test("addToLists() leaves out items already there, and the text alone when nothing is new", () => {
  const name = (x: unknown) => String(x).split("=")[0]!;
  assertEquals(add(TEXT, [list(["process", "env"], ["A=2"], name)]), TEXT);
  assertEquals(add(TEXT, [list(["linux", "namespaces"], [{ type: "mount" }])]), TEXT);
  const out = add(TEXT, [list(["process", "env"], ["A=2", "B=3", "B=4"], name)]);
  assertEquals(JSON.parse(out).process.env, ["PATH=/bin", "A=1", "B=3"]);
});

Deno.test("addToLists() refuses a path that is not a list", () => {
  assertThrows(
    () => add(TEXT, [list(["process", "cwd"], ["x"])]),
    GpuctlError,
    '"process.cwd" is not a list',
  );
});

Deno.test("addToLists() edits the member runc reads: keys in any case, the last one winning", () => {
  const text = '{"process":{"env":["A=1"],"Env":["B=2"]},"MOUNTS":[]}';
  const out = add(text, [
    list(["process", "env"], ["C=3"], undefined, text),
    list(["mounts"], [{ destination: "/x" }], undefined, text),
  ]);
  assertEquals(out, '{"process":{"env":["A=1"],"Env":["B=2","C=3"]},"MOUNTS":[{"destination":"/x"}]}');
  const tree = parseJson(out, "t");
  const env = member(member(tree, "process"), "env");
  assertEquals(env?.t === "arr" ? env.items.map((i) => (i.t === "str" ? i.value : "")) : [], ["B=2", "C=3"]);
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

Deno.test("parseJson shallow: the top level's members kept, everything below checked and dropped", () => {
  const text = '{"pid": 7, "bundle": "/b", "annotations": {"a": "1", "b": {"c": [1, 2]}}, "x": [{"y": 1}]}';
  const full = parseJson(text, "state");
  const shallow = parseJson(text, "state", { shallow: true });
  assertEquals(member(shallow, "pid"), member(full, "pid"));
  assertEquals(member(shallow, "bundle"), member(full, "bundle"));
  const ann = member(shallow, "annotations")!;
  assertEquals(ann.t === "obj" ? ann.members : null, []);
  assertEquals([ann.start, ann.end], [member(full, "annotations")!.start, member(full, "annotations")!.end]);
  const x = member(shallow, "x")!;
  assertEquals(x.t === "arr" ? x.items : null, []);
  // Still a parser: what is wrong below the top level is refused.
  assertThrows(
    () => parseJson('{"pid": 7, "annotations": {"a": }}', "state", { shallow: true }),
    GpuctlError,
  );
  assertThrows(
    () => parseJson('{"pid": 7, "annotations": {"a": "1"}', "state", { shallow: true }),
    GpuctlError,
  );
});
