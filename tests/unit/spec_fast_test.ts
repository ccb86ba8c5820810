/**
 * The hooks' fast read of config.json (`oci/spec.ts` `fastSpecFields`, `JSON.parse` and a count of the text's
 * keys) against `parseSpec` (gpuctl's positional parser, with runc's key rules): on realistic specs, on generated
 * ones with the cases that make them differ (a key twice, keys that fold alike, escaped keys, fields of the wrong
 * type, index-like annotation keys, deep nesting), and on mutated texts. Where the fast read answers, it answers
 * what `parseSpec` does; where `parseSpec` refuses, `readSpecFields` refuses with its error.
 */
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { fastSpecFields, keysInText, parseSpec, readSpecFields, type SpecFields } from "../../oci/spec.ts";
import { GpuctlError } from "../../errors/mod.ts";
import { rng } from "../helpers.ts";

type R = ReturnType<typeof rng>;

/** A JSON value whose objects are lists of members, so that a key may be given twice. */
type V = null | boolean | number | string | V[] | { m: [string, V][] };
const obj = (...m: [string, V][]): V => ({ m });

function text(v: V, indent = ""): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v);
  const inner = indent + "  ";
  if (Array.isArray(v)) {
    return v.length === 0 ? "[]" : `[\n${v.map((x) => inner + text(x, inner)).join(",\n")}\n${indent}]`;
  }
  if (v.m.length === 0) return "{}";
  return `{\n${
    v.m.map(([k, x]) => `${inner}${JSON.stringify(k)}: ${text(x, inner)}`).join(",\n")
  }\n${indent}}`;
}

/** A spec as Docker or Podman writes one. */
function realistic(n: number): V {
  return obj(
    ["ociVersion", "1.0.2-dev"],
    [
      "process",
      obj(
        ["terminal", false],
        ["user", obj(["uid", 0], ["gid", 0])],
        ["args", ["/bin/sh", "-c", 'echo "hi" && nvidia-smi']],
        ["env", [
          "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
          "NVIDIA_VISIBLE_DEVICES=all",
          `N=${n}`,
        ]],
        ["cwd", "/"],
        [
          "capabilities",
          obj(["bounding", ["CAP_CHOWN", "CAP_KILL"]], ["effective", ["CAP_CHOWN"]], ["permitted", [
            "CAP_CHOWN",
          ]]),
        ],
        ["rlimits", [obj(["type", "RLIMIT_NOFILE"], ["hard", 1048576], ["soft", 1048576])]],
        ["noNewPrivileges", true],
      ),
    ],
    ["root", obj(["path", "rootfs"], ["readonly", false])],
    ["hostname", "c1"],
    [
      "mounts",
      [
        obj(["destination", "/proc"], ["type", "proc"], ["source", "proc"], ["options", [
          "nosuid",
          "noexec",
        ]]),
        obj(["destination", "/dev"], ["type", "tmpfs"], ["source", "tmpfs"], ["options", [
          "nosuid",
          "mode=755",
        ]]),
        obj(["destination", "/etc/hosts"], ["type", "bind"], ["source", "/var/lib/c/hosts"], ["options", [
          "rbind",
        ]]),
      ],
    ],
    [
      "hooks",
      obj(["prestart", [
        obj(["path", "/usr/bin/nvidia-container-runtime-hook"], ["args", ["h", "prestart"]]),
      ]]),
    ],
    [
      "annotations",
      obj(["io.podman.annotations.autoremove", "TRUE"], ["cdi.k8s.io/gpu", "nvidia.com/gpu=0"]),
    ],
    [
      "linux",
      obj(
        ["devices", [
          obj(["path", "/dev/nvidia0"], ["type", "c"], ["major", 195], ["minor", 0]),
          "junk",
          null,
        ]],
        ["resources", obj(["devices", [obj(["allow", false], ["access", "rwm"])]])],
        ["namespaces", [obj(["type", "pid"]), obj(["type", "mount"])]],
        ["maskedPaths", ["/proc/acpi", "/proc/kcore"]],
      ),
    ],
  );
}

const FIELD_KEYS = [
  "process",
  "env",
  "root",
  "path",
  "mounts",
  "annotations",
  "hooks",
  "prestart",
  "linux",
  "devices",
  "capabilities",
  "bounding",
  "destination",
  "source",
  "type",
  "options",
  "args",
];
/** Keys that runc matches to a field, or that JavaScript treats specially. */
const ODD_KEYS = [
  "Env",
  "ENV",
  "ſource",
  "Process",
  "rooT",
  "pAth",
  "__proto__",
  "0",
  "7",
  "01",
  "x\\y",
  'q"k',
  "K",
  "",
];
const ODD_VALUES: V[] = [
  null,
  1,
  true,
  "s",
  [],
  obj(),
  ["a", 1],
  [null],
  "tab\there",
  "\u2028\ud83d\ude00",
  'a"b\\c',
];

/** `v` with one random structural change at a random place. */
function mutate(r: R, v: V, depth = 0): V {
  if (v === null || typeof v !== "object") return r.next() < 0.5 ? r.pick(ODD_VALUES) : v;
  if (Array.isArray(v)) {
    if (v.length === 0 || r.next() < 0.2) return [...v, r.pick(ODD_VALUES)];
    const i = r.int(v.length);
    return v.map((x, j) => (j === i ? mutate(r, x, depth + 1) : x));
  }
  const m = v.m.map(([k, x]) => [k, x] as [string, V]);
  const roll = r.next();
  if (m.length === 0 || roll < 0.15) {
    m.splice(r.int(m.length + 1), 0, [r.pick([...ODD_KEYS, ...FIELD_KEYS]), r.pick(ODD_VALUES)]);
  } else if (roll < 0.3) { // a key again, as given or in another case
    const [k, x] = m[r.int(m.length)]!;
    const k2 = r.next() < 0.5 ? k : k.toUpperCase();
    m.splice(r.int(m.length + 1), 0, [k2, r.next() < 0.5 ? x : r.pick(ODD_VALUES)]);
  } else if (roll < 0.4) {
    const i = r.int(m.length);
    m[i] = [r.pick(ODD_KEYS), m[i]![1]];
  } else if (roll < 0.5) m.splice(r.int(m.length), 1);
  else {
    const i = r.int(m.length);
    m[i] = [m[i]![0], depth > 6 ? r.pick(ODD_VALUES) : mutate(r, m[i]![1], depth + 1)];
  }
  return { m };
}

/** `parseSpec`'s answer as `readSpecFields` gives it, or its error. */
function slow(t: string): SpecFields | string {
  try {
    const { tree: _, ...fields } = parseSpec(t, "config.json");
    return fields;
  } catch (e) {
    assert(e instanceof GpuctlError, `parseSpec: ${e}`);
    return e.message;
  }
}

function fast(t: string): SpecFields | string {
  try {
    return readSpecFields(t, "config.json");
  } catch (e) {
    assert(e instanceof GpuctlError, `readSpecFields: ${e}`);
    return e.message;
  }
}

/** Maps compared with their order, which the request reads them in. */
const comparable = (x: SpecFields | string) =>
  typeof x === "string" ? x : { ...x, annotations: [...x.annotations] };

Deno.test("readSpecFields(): realistic specs take the fast read and give parseSpec's fields", () => {
  for (let n = 0; n < 5; n++) {
    const t = text(realistic(n));
    const f = fastSpecFields(t);
    assert(f !== null, "the fast read answers for a spec as engines write them");
    assertEquals(comparable(f), comparable(slow(t)));
  }
});

Deno.test("readSpecFields(): the fast read steps aside where JSON.parse and runc differ, and parseSpec answers", () => {
  const base = text(realistic(0));
  const cases: [string, string][] = [
    [
      "a key twice (runc: the last; JSON.parse: the last, at the first's place)",
      base.replace('"cwd": "/"', '"env": ["B=2"], "Env": ["C=3"], "cwd": "/", "env": ["D=4"]'),
    ],
    ["an exact duplicate", base.replace('"hostname": "c1"', '"hostname": "c1", "root": {"path": "other"}')],
    ["an escaped key", base.replace('"hostname"', '"host\\u006eame"')],
    ["an index-like annotation key", base.replace('"cdi.k8s.io/gpu"', '"7": "x", "cdi.k8s.io/gpu"')],
    ["a field of the wrong type", base.replace('"cwd": "/"', '"cwd": "/", "env": "PATH=/bin"')],
    ["an annotation that is not a string", base.replace('"TRUE"', "true")],
    [
      "deep nesting",
      base.replace('"hostname": "c1"', `"hostname": "c1", "x": ${"[".repeat(100)}${"]".repeat(100)}`),
    ],
    [
      "a text over a MiB",
      base.replace('"hostname": "c1"', `"hostname": "c1", "x": "${"a".repeat(1 << 20)}"`),
    ],
  ];
  for (const [what, t] of cases) {
    assertEquals(fastSpecFields(t), null, what);
    assertEquals(comparable(fast(t)), comparable(slow(t)), what);
  }
  // Keys that differ only in case stay apart in JSON.parse: the fast read matches them as runc does.
  const folded = base.replace('"cwd": "/"', '"cwd": "/", "ENV": ["C=3"]');
  assert(fastSpecFields(folded) !== null);
  assertEquals(comparable(fast(folded)), comparable(slow(folded)));
  assertEquals(readSpecFields(folded, "c").env, ["C=3"]);
});

Deno.test("readSpecFields() and parseSpec() keep only the annotations asked for, and check every one", () => {
  const base = text(realistic(0));
  const cdi = (k: string) => k.startsWith("cdi.k8s.io/");
  const all = readSpecFields(base, "c");
  for (const got of [fastSpecFields(base, cdi)!, readSpecFields(base, "c", cdi), parseSpec(base, "c", cdi)]) {
    assertEquals([...got.annotations], [["cdi.k8s.io/gpu", "nvidia.com/gpu=0"]]);
    assertEquals({ ...got, annotations: null, tree: null }, { ...all, annotations: null, tree: null });
  }
  assertEquals(readSpecFields(base, "c", () => false).annotations.size, 0);
  // A value runc's decoder refuses is refused under a key not kept too, by both reads.
  const bad = base.replace('"TRUE"', "true");
  for (const read of [() => readSpecFields(bad, "c", cdi), () => parseSpec(bad, "c", cdi)]) {
    assertThrows(read, GpuctlError, 'annotation "io.podman.annotations.autoremove" is not a string');
  }
});

Deno.test("readSpecFields(): this Deno's JSON.parse misnaming of an escaped key cannot reach the fields", () => {
  // The pair quickJsonc's test pins (tests/unit/fuzz_test.ts): after the first, JSON.parse names the second's
  // escaped key after the first's.
  JSON.parse('{"x y":false,"\\\\":{}}');
  const t = '{"x y":false,"\\"":{},"process":{"env":["A=1"]}}';
  assertEquals(fastSpecFields(t), null);
  assertEquals(readSpecFields(t, "c").env, ["A=1"]);
});

Deno.test("fuzz: readSpecFields() gives parseSpec's fields or error on mutated specs", () => {
  const r = rng(20261206);
  let fastAnswered = 0, stepped = 0, refused = 0;
  for (let i = 0; i < 2500; i++) {
    let v = realistic(i);
    for (let k = 1 + r.int(4); k > 0; k--) v = mutate(r, v);
    let t = text(v);
    if (i % 5 === 4) { // a textual change too: a character dropped or doubled
      const at = r.int(t.length);
      t = r.next() < 0.5 ? t.slice(0, at) + t.slice(at + 1) : t.slice(0, at) + t[at] + t.slice(at);
    }
    const want = slow(t), got = fast(t);
    assertEquals(comparable(got), comparable(want), t);
    if (typeof want === "string") refused++;
    else if (fastSpecFields(t) !== null) fastAnswered++;
    else stepped++;
  }
  assert(
    fastAnswered > 300 && stepped > 300 && refused > 100,
    `${fastAnswered} fast, ${stepped} stepped aside, ${refused} refused`,
  );
});

Deno.test("fuzz: keysInText() counts a JSON text's keys as a tokenizer does, and steps aside for an escaped one", () => {
  // The reference: every string (with the colon after it when it is a key) and bracket, by a regular expression.
  const TOKENS = /"(?:[^"\\]+|\\.)*"(?:[ \t\n\r]*:)?|[{}[\]]/g;
  const reference = (t: string) => {
    let keys = 0;
    for (const x of t.match(TOKENS) ?? []) {
      if (x[0] !== '"' || !x.endsWith(":")) continue;
      if (x.includes("\\")) return null;
      keys++;
    }
    return keys;
  };
  const r = rng(7);
  const parts = ["\\", '"', '":', '\\":', ":80", " : ", "\\\\", "\\u0022", "x", "", "{", "]"];
  const str = () => Array.from({ length: r.int(4) }, () => r.pick(parts)).join("");
  const value = (depth: number): unknown => {
    const roll = r.next();
    if (depth > 4 || roll < 0.4) return r.next() < 0.8 ? str() : r.pick([1, null, true]);
    if (roll < 0.6) return Array.from({ length: r.int(4) }, () => value(depth + 1));
    return Object.fromEntries(
      Array.from({ length: r.int(5) }, () => [r.next() < 0.8 ? `k${r.int(9)}` : str(), value(depth + 1)]),
    );
  };
  let escapedKey = 0, counted = 0;
  for (let i = 0; i < 3000; i++) {
    const t = JSON.stringify(value(0), null, r.pick([0, 1, "\t", " \n "]));
    const want = reference(t);
    assertEquals(keysInText(t), want, t);
    if (want === null) escapedKey++;
    else if (want > 0) counted++;
  }
  for (let i = 0; i < 300; i++) { // and the config.json corpus, mutated
    const t = text(mutate(r, realistic(i)));
    assertEquals(keysInText(t), reference(t), t);
  }
  assert(escapedKey > 300 && counted > 300, `${escapedKey} with an escaped key, ${counted} counted`);
});

Deno.test("readSpecFields(): a huge array or a long escaped string stays within bounds", () => {
  const arr = `{"x":[${Array(300_000).fill("0").join(",")}],"process":{"env":["A=1"]}}`;
  assertEquals(readSpecFields(arr, "c").env, ["A=1"]);
  const esc = `{"x":"${"\\n".repeat(400_000)}","process":{"env":["A=1"]}}`;
  assertEquals(readSpecFields(esc, "c").env, ["A=1"]);
  assertThrows(() => readSpecFields("[]", "config.json"), GpuctlError, "not a JSON object");
});
