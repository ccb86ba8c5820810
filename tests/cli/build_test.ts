/**
 * `deno task dist`: the files a host gets, and the packed executable's launcher (tools/pack/launcher.c): it runs
 * like the source, says what it is, refuses a corrupt or cut-short file, and never runs from a directory another
 * user could change.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "../assert.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { artifact, DENO, PROJECT, runGpuctl, tempDir } from "../helpers.ts";
import { VERSION } from "../../version.ts";
import { privateMounts } from "../e2e/privatens.ts";
import { startServe } from "../e2e/bundle.ts";
import { V8_FLAGS } from "../../tools/pack/build.ts";

async function sh(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}) {
  const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped", stdin: "null", ...opts })
    .output();
  const dec = new TextDecoder();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

Deno.test("deno task dist: the executable, the tarball and the .deb with SHA256SUMS; packed where no denort is at hand", async () => {
  using out = tempDir();
  const r = await sh(DENO, ["run", "-A", "--quiet", `${PROJECT}/tools/dist.ts`, "--out", out.path], {
    cwd: PROJECT,
    env: { NO_COLOR: "1" },
  });
  assertEquals(r.code, 0, r.stderr);
  const arch = Deno.build.arch === "x86_64" ? "amd64" : Deno.build.arch;
  const tarball = `gpuctl-${VERSION}-linux-${Deno.build.arch}.tar.gz`, deb = `gpuctl_${VERSION}_${arch}.deb`;
  assertEquals(
    [...Deno.readDirSync(out.path)].map((e) => e.name).sort(),
    ["SHA256SUMS", "gpuctl", "gpuctl.js", deb, tarball].sort(),
  );
  const sums = await sh("sha256sum", ["-c", "SHA256SUMS"], { cwd: out.path });
  assertEquals(sums.code, 0, sums.stdout + sums.stderr);
  assertEquals(sums.stdout, `gpuctl: OK\n${tarball}: OK\n${deb}: OK\n`);

  const v = await sh(`${out.path}/gpuctl`, ["--version"], { env: { GPUCTL_RUNTIME_DIR: `${out.path}/rt` } });
  assertEquals(v.code, 0, v.stderr);
  const kind = Deno.env.get("DENORT_BIN") ? "compiled" : "(packed|compiled)";
  assertMatch(v.stdout, new RegExp(`^gpuctl ${VERSION}\\n${kind}, commit [0-9a-f]{12}(\\+dirty)?, built `));

  // The tarball: the executable, the units, the manifests, INSTALL, and their sums, which verify.
  const x = await sh("tar", ["-xzf", tarball], { cwd: out.path });
  assertEquals(x.code, 0, x.stderr);
  const top = `${out.path}/gpuctl-${VERSION}`;
  for (
    const f of [
      "gpuctl",
      "INSTALL",
      "SHA256SUMS",
      "systemd/gpuctl-serve.service",
      "kubernetes/runtimeclass.yaml",
      "man/gpuctl.1",
    ]
  ) {
    assert(Deno.statSync(`${top}/${f}`).isFile, f);
  }
  assertEquals((await sh("sha256sum", ["-c", "--quiet", "SHA256SUMS"], { cwd: top })).code, 0);
  assertEquals(Deno.readFileSync(`${top}/gpuctl`).length, Deno.statSync(`${out.path}/gpuctl`).size);
  assertStringIncludes(Deno.readTextFileSync(`${top}/INSTALL`), "./gpuctl install");

  // The .deb: metadata, the packaged executable, units disabled (no links made), the scripts.
  const info = await sh("dpkg-deb", ["-f", `${out.path}/${deb}`]);
  assertStringIncludes(info.stdout, `Package: gpuctl\nVersion: ${VERSION}\nArchitecture: ${arch}\n`);
  assertMatch(info.stdout, /^Depends: libc6 \(>= 2\.17\), libgcc-s1 \| libgcc1$/m);
  const files = (await sh("dpkg-deb", ["-c", `${out.path}/${deb}`])).stdout;
  assertStringIncludes(files, "./usr/lib/gpuctl/gpuctl.pkg");
  assertStringIncludes(files, "./lib/systemd/system/gpuctl-serve.service");
  assertStringIncludes(files, "./usr/share/man/man1/gpuctl.1.gz");
  assert(!files.includes(".wants/"), "units shipped disabled");
  const unit = await sh("sh", [
    "-c",
    `dpkg-deb --fsys-tarfile "$0" | tar -xOf - ./lib/systemd/system/gpuctl-serve.service`,
    `${out.path}/${deb}`,
  ]);
  assertStringIncludes(unit.stdout, "ExecStart=/usr/bin/gpuctl serve");
  const scripts = await sh("sh", [
    "-c",
    `dpkg-deb --ctrl-tarfile "$0" | tar -xOf - ./postinst ./prerm`,
    `${out.path}/${deb}`,
  ]);
  assertStringIncludes(
    scripts.stdout,
    "gpuctl.pkg install --link --prefix /usr/bin --lib-dir /usr/lib/gpuctl",
  );
  assertStringIncludes(
    scripts.stdout,
    "gpuctl.pkg install --uninstall --prefix /usr/bin --lib-dir /usr/lib/gpuctl",
  );
});

Deno.test("deno task dist refuses a DENORT_BIN that does not exist", async () => {
  using out = tempDir();
  const r = await sh(DENO, [
    "run",
    "-A",
    "--quiet",
    `${PROJECT}/tools/dist.ts`,
    "--only",
    "gpuctl",
    "--out",
    out.path,
  ], {
    env: { DENORT_BIN: "/nonexistent/denort" },
  });
  assertEquals(r.code, 1);
  assertStringIncludes(
    r.stderr,
    "dist: DENORT_BIN=/nonexistent/denort: not a file; it must name Deno's denort",
  );
});

Deno.test("dist/gpuctl runs exactly like the source, from a directory holding nothing else", async () => {
  const a = artifact();
  const d = await fakeDriver(standardSpec(2));
  using tmp = tempDir();
  Deno.writeTextFileSync(`${tmp.path}/c.jsonc`, fixtureConfig(d));
  const env = { GPUCTL_CONFIG: `${tmp.path}/c.jsonc` };
  for (
    const args of [["info", "--json"], ["list"], [
      "cdi",
      "generate",
      "--hook-path",
      "/bin/true",
      "--format",
      "yaml",
    ]]
  ) {
    const fromSource = await runGpuctl(args, { env });
    const fromArtifact = await runGpuctl(args, { env, exe: a.exe, cwd: tmp.path });
    assertEquals(fromArtifact, fromSource, args.join(" "));
    assertEquals(fromArtifact.code, 0);
  }
});

Deno.test("dist/gpuctl's launcher: a short-lived gpuctl runs with its V8 options, gpuctl serve with V8's own", async () => {
  const a = artifact();
  const d = await fakeDriver(standardSpec(1));
  using t = tempDir();
  Deno.writeTextFileSync(`${t.path}/c.jsonc`, fixtureConfig(d, { cacheDir: `${t.path}/cache` }));
  const env = { GPUCTL_CONFIG: `${t.path}/c.jsonc` };
  const cmdline = (pid: number) => Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
  // Its options leave V8 without a JIT (tools/pack/build.ts), and so without WebAssembly: nothing bundled may use it.
  assert(
    !/\bWebAssembly\b/.test(Deno.readTextFileSync(a.js)),
    `${a.js} uses WebAssembly, which --jitless turns off`,
  );
  // A hook, waiting for the container's state on its stdin: Deno, by then, with its options.
  const hook = new Deno.Command(a.exe, { args: ["hook", "prestart"], env, stdin: "piped", stderr: "null" })
    .spawn();
  try {
    let argv: string[] = [];
    for (let i = 0; i < 200 && !argv.some((x) => x.endsWith("gpuctl.js")); i++) {
      await new Promise((r) => setTimeout(r, 25));
      argv = cmdline(hook.pid);
    }
    assertEquals(argv.filter((x) => x.startsWith("--v8-flags")), [`--v8-flags=${V8_FLAGS}`], argv.join(" "));
  } finally {
    await hook.stdin.close();
    await hook.status;
  }
  const server = await startServe("", env, `${t.path}/cache/serve`, { exe: a.exe });
  try {
    const argv = cmdline(server.pid);
    assert(argv.some((x) => x.endsWith("gpuctl.js")), argv.join(" "));
    assertEquals(argv.filter((x) => x.startsWith("--v8-flags")), [], argv.join(" "));
  } finally {
    await server.stop();
  }
});

Deno.test("dist/gpuctl's launcher: a corrupt or cut-short file is refused in one line, and nothing runs from a directory others can write", async () => {
  const a = artifact();
  using t = tempDir();
  Deno.chmodSync(t.path, 0o755);
  // Marked as an install directory: copies here unpack beside themselves (else in /var/lib/gpuctl, the host's).
  Deno.writeTextFileSync(`${t.path}/.installed-by-gpuctl`, "");
  const run = (exe: string, env: Record<string, string> = {}) => sh(exe, ["--version"], { env });

  // One byte of the payload changed: the unpacked copy would differ from what was built.
  const bytes = Deno.readFileSync(a.exe);
  const corrupt = bytes.slice();
  const at = bytes.length - 256 - 1000;
  corrupt[at] = corrupt[at]! ^ 0xff;
  Deno.writeFileSync(`${t.path}/corrupt`, corrupt, { mode: 0o755 });
  const c = await run(`${t.path}/corrupt`);
  assertEquals(c.code, 1);
  assertMatch(
    c.stderr,
    /^gpuctl: \S+\/corrupt: corrupt: its payload's SHA-256 is [0-9a-f]{16}…, not [0-9a-f]{16}…; download it again\n$/,
  );
  assertEquals([...Deno.readDirSync(`${t.path}/.gpuctl-runtime`)], [], "nothing left unpacked");

  Deno.writeFileSync(`${t.path}/short`, bytes.subarray(0, bytes.length >> 1), { mode: 0o755 });
  const s = await run(`${t.path}/short`);
  assertEquals([s.code, s.stderr], [
    1,
    `gpuctl: ${t.path}/short: not a packed gpuctl, or cut short: download it again\n`,
  ]);

  // A directory others can write: the launcher does not unpack there, and refuses one named for it.
  Deno.mkdirSync(`${t.path}/open`, { mode: 0o777 });
  Deno.chmodSync(`${t.path}/open`, 0o777);
  const g = await run(a.exe, { GPUCTL_RUNTIME_DIR: `${t.path}/open` });
  assertEquals([g.code, g.stderr], [1, `gpuctl: GPUCTL_RUNTIME_DIR: ${t.path}/open is writable by others\n`]);
  // A copy there, even marked as installed, unpacks in root's own place instead (/var/lib/gpuctl/runtime, this
  // test's in a namespace).
  Deno.copyFileSync(a.exe, `${t.path}/open/gpuctl`);
  Deno.writeTextFileSync(`${t.path}/open/.installed-by-gpuctl`, "");
  const ns = privateMounts({ "/var/lib/gpuctl": `${t.path}/var-lib-gpuctl` }, `${t.path}/ns`);
  const o = await sh(ns[0]!, [...ns.slice(1), `${t.path}/open/gpuctl`, "--version"]);
  assertEquals(o.code, 0, o.stderr);
  let beside = true;
  try {
    Deno.statSync(`${t.path}/open/.gpuctl-runtime`);
  } catch {
    beside = false;
  }
  assertEquals(beside, false, "not unpacked beside a file in a directory others can write");
  assertEquals(
    [...Deno.readDirSync(`${t.path}/var-lib-gpuctl/runtime`)].length,
    1,
    "unpacked in root's place",
  );
});
