import { assert, assertEquals, assertThrows } from "../assert.ts";
import { BUILTIN, Registry } from "../../plugins/registry.ts";
import { loadPlugins, parsePlugin } from "../../plugins/declarative.ts";
import { GpuctlError } from "../../errors/mod.ts";
import { tempDir, writeFile } from "../helpers.ts";

const reg = new Registry();

Deno.test("Registry.resolve() applies the default, all, implied capabilities and compat32", () => {
  assertEquals(reg.resolve(undefined), {
    requested: ["utility", "compute"],
    effective: ["utility", "compute"],
    compat32: false,
  });
  assertEquals(reg.resolve(""), reg.resolve(undefined));
  assertEquals(reg.resolve("all").requested, [
    "utility",
    "compute",
    "video",
    "graphics",
    "display",
    "ngx",
    "compat32",
  ]);
  assertEquals(reg.resolve("all").compat32, true);
  assertEquals(reg.resolve("video"), {
    requested: ["video"],
    effective: ["compute", "video"],
    compat32: false,
  });
  assertEquals(reg.resolve("display").effective, ["graphics", "display"]);
  assertEquals(reg.resolve(" utility , compute ").requested, ["utility", "compute"]);
  assertEquals(reg.resolve("compute,compat32").compat32, true);
});

Deno.test("Registry.resolve() names an unknown capability and lists the known ones; names are case-sensitive, as NVIDIA's", () => {
  const e = assertThrows(() => reg.resolve("compute,cuda"), GpuctlError);
  assertEquals(
    e.message,
    'NVIDIA_DRIVER_CAPABILITIES: unknown capability "cuda" (known: compat32, compute, display, gdrcopy, gds, graphics, mofed, ngx, nvswitch, utility, video, all)',
  );
  assertThrows(() => reg.resolve("COMPUTE"), GpuctlError, 'unknown capability "COMPUTE"');
  assertThrows(() => reg.resolve("ALL"), GpuctlError, 'unknown capability "ALL"');
  assertEquals(assertThrows(() => reg.resolve("x", "--capabilities"), GpuctlError).what, "--capabilities");
});

Deno.test("every built-in capability is described and contributes something", () => {
  for (const c of BUILTIN) {
    assert(c.description.length > 10, c.name);
    const contributes = (c.libraries?.length ?? 0) + (c.deviceNodes?.length ?? 0) + (c.implies?.length ?? 0);
    assert(contributes > 0 || c.compat32 === true, c.name);
  }
});

Deno.test("parsePlugin() reads a new capability and one that extends compute", () => {
  const ib = parsePlugin(
    `// RDMA for GPUDirect
{
  "capability": "infiniband",
  "description": "verbs",
  "implies": ["compute"],
  "libraries": ["libibverbs.so"],
  "anyLibraryVersion": true,
  "binaries": ["ibv_devinfo"],
  "files": ["/etc/ib.conf", {"path": "/opt/x.conf", "containerPath": "/etc/x.conf"}],
  "deviceNodes": ["/dev/nvidia-uvm"],
  "ipcs": ["/run/ib.sock", {"path": "/run/ibdir", "kind": "dir"}],
  "env": {"NCCL_IB_DISABLE": "0"},
}`,
    "/p/ib.jsonc",
  );
  assertEquals(ib.name, "infiniband");
  assertEquals(ib.files, [{ candidates: ["/etc/ib.conf"] }, {
    candidates: ["/opt/x.conf"],
    containerPath: "/etc/x.conf",
  }]);
  assertEquals(ib.ipcs, [{ path: "/run/ib.sock", kind: "socket" }, { path: "/run/ibdir", kind: "dir" }]);
  const ext = parsePlugin(
    '{"capability": "compute", "libraries": ["libnvidia-extra.so"]}',
    "/p/c.jsonc",
  );
  const r = new Registry([...BUILTIN, ib, ext]);
  assertEquals(r.resolve("infiniband").effective, ["compute", "infiniband"]);
  assertEquals(r.get("compute")!.libraries!.at(-1), "libnvidia-extra.so");
  assertEquals(r.get("compute")!.libraries!.includes("libcuda.so"), true);
  assertEquals(r.get("compute")!.origin, "builtin + /p/c.jsonc");
});

Deno.test("parsePlugin() errors name the file, line and column, and what is wrong", () => {
  const err = (text: string) => assertThrows(() => parsePlugin(text, "/p/x.jsonc"), GpuctlError).message;
  assertEquals(
    err('{\n  "capability": "Bad Name"\n}'),
    '/p/x.jsonc:2:17: "capability" must be a lower-case name like "infiniband", not "Bad Name"',
  );
  assertEquals(
    err('{"capability": "x", "bogus": 1}'),
    '/p/x.jsonc:1:21: unknown key "bogus" (known keys: capability, description, implies, libraries, anyLibraryVersion, binaries, files, directories, deviceNodes, ipcs, env)',
  );
  assertEquals(
    err('{"capability": "x",\n "libraries": ["cuda"]}'),
    '/p/x.jsonc:2:15: "libraries" must be a list of SONAME prefixes like "libfoo.so", not ["cuda"]',
  );
  assertEquals(
    err('{"capability": "x", "binaries": ["/usr/bin/x"]}'),
    '/p/x.jsonc:1:33: "binaries" must be a list of program names (no /), not ["/usr/bin/x"]',
  );
  assertEquals(
    err('{"capability": "x", "files": ["/etc/../../x"]}'),
    '/p/x.jsonc:1:31: a file must be an absolute path under the driver root without "..", or {"path", "containerPath"}',
  );
  assertEquals(
    err('{"capability": "x", "files": ["relative"]}'),
    '/p/x.jsonc:1:31: a file must be an absolute path under the driver root without "..", or {"path", "containerPath"}',
  );
  // A node the host lacks is not the file's fault: it is checked when a container asks for the capability.
  assertEquals(
    parsePlugin('{"capability": "x", "deviceNodes": ["/dev/nvidia99", "/dev/fs*"]}', "/p/x.jsonc")
      .deviceNodes,
    [
      "/dev/nvidia99",
      "/dev/fs*",
    ],
  );
  assertEquals(
    err('{"capability": "x", "deviceNodes": ["/etc/passwd"]}'),
    '/p/x.jsonc:1:37: a device node must be a path under /dev (a * only in its last part), not "/etc/passwd"',
  );
  assertEquals(
    err('{"capability": "x", "deviceNodes": ["/dev/*/x"]}'),
    '/p/x.jsonc:1:37: a device node must be a path under /dev (a * only in its last part), not "/dev/*/x"',
  );
  assertEquals(
    err('{"capability": "x", "env": {"LD_PRELOAD": "/x.so"}}'),
    '/p/x.jsonc:1:29: environment variable "LD_PRELOAD" is not allowed in a plugin',
  );
  assertEquals(
    err('{"capability": "x", "ipcs": [{"path": "/run/x", "kind": "fifo"}]}'),
    '/p/x.jsonc:1:30: an ipc must be an absolute path or {"path", "kind": "socket"|"dir"}',
  );
  assertEquals(err('{"description": "no name"}'), '/p/x.jsonc: has no "capability" name');
  assertEquals(
    err('{"capability": "x",,}'),
    "/p/x.jsonc:1:20: not valid JSONC: expected a property name in double quotes ('gpuctl config --default' shows a valid file)",
  );
  assertEquals(err(""), '/p/x.jsonc: is empty: a plugin needs at least "capability"');
  const bad = assertThrows(
    () =>
      new Registry([
        ...BUILTIN,
        parsePlugin('{"capability": "x", "implies": ["nope"]}', "/p/y.jsonc"),
      ]),
    GpuctlError,
  );
  assertEquals(bad.message, 'capability x: implies unknown capability "nope" (from /p/y.jsonc)');
});

Deno.test("loadPlugins() reads *.jsonc and *.json in name order; a missing directory means none", () => {
  using t = tempDir();
  assertEquals(loadPlugins(`${t.path}/absent`), []);
  writeFile(t.path, "20-b.json", '{"capability": "b"}');
  writeFile(t.path, "10-a.jsonc", '{"capability": "a"}');
  writeFile(t.path, "README.md", "not a plugin");
  assertEquals(loadPlugins(t.path).map((c) => [c.name, c.origin]), [["a", `${t.path}/10-a.jsonc`], [
    "b",
    `${t.path}/20-b.json`,
  ]]);
});
