/**
 * `gpuctl configure` against the files operators really have: a daemon.json that is a link into configuration
 * management, one that is not UTF-8, a config.toml of mode 0600 holding a registry password, and TOML whose
 * multi-line strings hold text that looks like keys. Links stay links, bytes not edited stay as they were, what
 * gpuctl writes is as private as what it came from, and every valid TOML is edited.
 */
import { assertEquals, assertStringIncludes } from "../assert.ts";
import { runGpuctl, tempDir } from "../helpers.ts";

const run = (args: string[]) => runGpuctl(["configure", ...args]);
const stat = (p: string) => {
  const s = Deno.statSync(p);
  return { mode: (s.mode ?? 0) & 0o777, uid: s.uid, gid: s.gid };
};

Deno.test("configure docker: a daemon.json that is a link: its target is edited, the link stays, --remove restores it byte for byte", async () => {
  using t = tempDir();
  Deno.mkdirSync(`${t.path}/cm`);
  const text = '{\n  "log-level": "warn"\n}\n';
  Deno.writeTextFileSync(`${t.path}/cm/daemon.json`, text);
  Deno.symlinkSync(`${t.path}/cm/daemon.json`, `${t.path}/daemon.json`);
  const r = await run([
    "docker",
    "--config",
    `${t.path}/daemon.json`,
    "--runtime-path",
    "/usr/local/bin/gpuctl-runtime",
  ]);
  assertEquals(r.code, 0, r.stderr);
  assertEquals(Deno.lstatSync(`${t.path}/daemon.json`).isSymlink, true, "still a link");
  assertStringIncludes(Deno.readTextFileSync(`${t.path}/cm/daemon.json`), '"nvidia"');
  const u = await run(["docker", "--config", `${t.path}/daemon.json`, "--remove"]);
  assertEquals(u.code, 0, u.stderr);
  assertEquals(Deno.lstatSync(`${t.path}/daemon.json`).isSymlink, true);
  assertEquals(Deno.readTextFileSync(`${t.path}/cm/daemon.json`), text);
});

Deno.test("configure docker: a daemon.json that is not UTF-8 is refused, naming the byte, and nothing is written", async () => {
  using t = tempDir();
  const bytes = new Uint8Array([
    ...new TextEncoder().encode('{"labels": ["caf'),
    0xe9,
    ...new TextEncoder().encode('"]}\n'),
  ]);
  Deno.writeFileSync(`${t.path}/daemon.json`, bytes);
  const r = await run(["docker", "--config", `${t.path}/daemon.json`]);
  assertEquals(r.code, 1);
  assertEquals(
    r.stderr,
    `gpuctl: ${t.path}/daemon.json: is not UTF-8 text (byte 16 is not): the engine reads such bytes as something else, and gpuctl could not keep them; fix the file (nothing was changed)\n`,
  );
  assertEquals(Deno.readFileSync(`${t.path}/daemon.json`), bytes);
  assertEquals([...Deno.readDirSync(t.path)].map((e) => e.name), ["daemon.json"]);
});

Deno.test("configure containerd: a config.toml of mode 0600 (a registry password in it): the drop-in carrying its settings and the backup are 0600 and its owner's", async () => {
  using t = tempDir();
  const main = `${t.path}/config.toml`;
  Deno.writeTextFileSync(
    main,
    'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.configs."registry.example".auth]\n  password = "s3cret"\n',
  );
  Deno.chmodSync(main, 0o600);
  Deno.chownSync(main, 1234, 1234);
  const r = await run(["containerd", "--config", main, "--drop-in", `${t.path}/conf.d/99-gpuctl.toml`]);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(Deno.readTextFileSync(`${t.path}/conf.d/99-gpuctl.toml`), "s3cret");
  for (const f of [main, `${main}.gpuctl-backup`, `${t.path}/conf.d/99-gpuctl.toml`]) {
    assertEquals(stat(f), { mode: 0o600, uid: 1234, gid: 1234 }, f);
  }
});

Deno.test("configure containerd: TOML whose multi-line strings hold key-like text is edited, and --remove restores it", async () => {
  using t = tempDir();
  const main = `${t.path}/config.toml`;
  const text =
    'note = """\nversion = 1\nimports = ["x"]\n[fake]\n"""\nversion = 2\nrecipe = \'\'\'\n[plugins]\n\'\'\'\n';
  Deno.writeTextFileSync(main, text);
  const args = ["containerd", "--config", main, "--drop-in", `${t.path}/conf.d/99-gpuctl.toml`];
  const r = await run(args);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(
    Deno.readTextFileSync(main),
    `version = 2\nimports = ["${t.path}/conf.d/99-gpuctl.toml"]`,
  );
  const u = await run([...args, "--remove"]);
  assertEquals(u.code, 0, u.stderr);
  assertEquals(Deno.readTextFileSync(main), text);
});
