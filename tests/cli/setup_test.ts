/**
 * `gpuctl install` against files in a temporary directory (configure: configure_test.ts).
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { PROJECT, runGpuctl, runGpuctl as run, tempDir } from "../helpers.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";

Deno.test("install from source: the two names, running Deno on this checkout (and saying so); idempotent; never replaces a foreign file; uninstalls only its own", async () => {
  using t = tempDir();
  using c = tempDir();
  const config = `${c.path}/c.jsonc`;
  Deno.writeTextFileSync(
    config,
    JSON.stringify({ cacheDir: `${c.path}/cache`, cdiSpecDirs: [`${c.path}/cdi`] }),
  );
  const runGpuctl = (args: string[]) =>
    run(args, { env: { GPUCTL_CONFIG: config }, entry: `${PROJECT}/cli/main.ts` });
  const r = await runGpuctl(["install", "--prefix", t.path]);
  assertStringIncludes(
    r.stderr,
    `gpuctl: warning: installing from ${PROJECT}/cli/main.ts (not a single executable): the fronts run Deno on it`,
  );
  assertEquals(r.code, 0, r.stderr);
  for (const n of ["gpuctl-runtime", "nvidia-container-runtime-hook"]) {
    const text = Deno.readTextFileSync(`${t.path}/${n}`);
    assertStringIncludes(text, "# gpuctl install launcher");
    assert((Deno.statSync(`${t.path}/${n}`).mode! & 0o111) !== 0);
  }
  // The launcher really is gpuctl in that role.
  const help = await new Deno.Command(`${t.path}/nvidia-container-runtime-hook`, {
    args: ["--help"],
    stdout: "piped",
  }).output();
  assertStringIncludes(new TextDecoder().decode(help.stdout), "Usage: gpuctl hook prestart");
  const again = await runGpuctl(["install", "--prefix", t.path]);
  assertStringIncludes(again.stdout, `${t.path}/gpuctl-runtime: already installed`);
  Deno.removeSync(`${t.path}/nvidia-container-runtime-hook`);
  Deno.writeTextFileSync(`${t.path}/nvidia-container-runtime-hook`, "#!/bin/sh\necho NVIDIA's own\n");
  const refused = await runGpuctl(["install", "--prefix", t.path]);
  assertEquals(refused.code, 1);
  assertEquals(
    refused.stderr.split("\n").at(-2),
    `gpuctl: ${t.path}/nvidia-container-runtime-hook: exists and was not created by gpuctl install; remove it first, or use --prefix`,
  );
  const un = await runGpuctl(["install", "--prefix", t.path, "--uninstall"]);
  assertEquals(un.code, 0);
  assertStringIncludes(un.stdout, `removed ${t.path}/gpuctl-runtime`);
  assertStringIncludes(un.stderr, "was not created by gpuctl install; left in place");
  assertEquals(
    Deno.readTextFileSync(`${t.path}/nvidia-container-runtime-hook`),
    "#!/bin/sh\necho NVIDIA's own\n",
  );
});

Deno.test("uninstall removes what gpuctl kept in cacheDir, and only that; refuses, removing nothing, while gpuctl serve runs", async () => {
  using t = tempDir();
  using c = tempDir();
  const cache = `${c.path}/cache`, serve = `${cache}/serve`;
  const config = `${c.path}/c.jsonc`;
  Deno.writeTextFileSync(config, JSON.stringify({ cacheDir: cache, cdiSpecDirs: [`${c.path}/cdi`] }));
  const gpuctl = (args: string[]) =>
    run(args, { env: { GPUCTL_CONFIG: config }, entry: `${PROJECT}/cli/main.ts` });
  const fill = () => {
    Deno.mkdirSync(serve, { recursive: true });
    const ours = [
      "snapshot-0123456789abcdef.json",
      "plan-fedcba9876543210.json",
      "ldcache-0a.bin",
      ".plan-fedcba9876543210.json.4242", // a writer's temporary, left by a crash
      "serve/lock",
      "serve/123.hook.argv",
      "serve/123.hook.stdin",
      "serve/.pid.77",
    ];
    for (const f of ours) Deno.writeTextFileSync(`${cache}/${f}`, "x");
    for (const f of ["requests", "123.reply"]) {
      if (lstat(`${serve}/${f}`) === null) {
        assert(new Deno.Command("mkfifo", { args: [`${serve}/${f}`] }).outputSync().success);
      }
    }
  };
  // Not gpuctl's names (one only looks like a kept plan): left, and the directory with them.
  const foreign = ["notes.txt", "plan-1.json", "snapshot-0123456789abcdef.json.bak", "ldcache-0a.bin.d"];
  Deno.mkdirSync(cache, { recursive: true });
  for (const f of foreign.slice(0, 3)) Deno.writeTextFileSync(`${cache}/${f}`, "keep");
  Deno.mkdirSync(`${cache}/${foreign[3]}`);
  const lstat = (p: string) => {
    try {
      return Deno.lstatSync(p);
    } catch {
      return null;
    }
  };
  const listing = (d: string) => [...Deno.readDirSync(d)].map((e) => e.name).sort();

  assertEquals((await gpuctl(["install", "--prefix", t.path])).code, 0);
  fill();
  // A server alive in it (this test's own process, its start time in the pid file as gpuctl serve writes it).
  const stat = Deno.readTextFileSync(`/proc/${Deno.pid}/stat`);
  Deno.writeTextFileSync(
    `${serve}/pid`,
    `${Deno.pid} ${stat.slice(stat.lastIndexOf(") ") + 2).split(" ")[19]}\n`,
  );
  const before = listing(cache);
  const refused = await gpuctl(["install", "--prefix", t.path, "--uninstall"]);
  assertEquals(refused.code, 1);
  assertStringIncludes(
    refused.stderr,
    `gpuctl serve (pid ${Deno.pid}) is running in ${serve}; stop it (systemctl disable --now gpuctl-serve, or kill ${Deno.pid})`,
  );
  assertEquals(listing(cache), before);
  assert(Deno.statSync(`${t.path}/gpuctl-runtime`).isFile, "nothing removed");

  // Forced: the run state goes, the live server's directory stays, and it says so.
  const forced = await gpuctl(["install", "--prefix", t.path, "--uninstall", "--force"]);
  assertEquals(forced.code, 0, forced.stderr);
  assertStringIncludes(forced.stdout, `removed 4 files gpuctl kept in ${cache}\n`);
  assertStringIncludes(
    forced.stderr,
    `gpuctl serve (pid ${Deno.pid}) still runs in ${serve}, from removed files`,
  );
  assertEquals(listing(cache), [...foreign, "serve"].sort());
  assertEquals(listing(serve), [
    ".pid.77",
    "123.hook.argv",
    "123.hook.stdin",
    "123.reply",
    "lock",
    "pid",
    "requests",
  ]);

  // No server (its pid file names a process that has ended): everything of gpuctl's goes, nothing else.
  Deno.writeTextFileSync(`${serve}/pid`, "999999999 1\n");
  fill();
  const un = await gpuctl(["install", "--prefix", t.path, "--uninstall"]);
  assertEquals(un.code, 0, un.stderr);
  assertStringIncludes(un.stdout, `removed 11 files gpuctl kept in ${cache}\n`);
  assertEquals(listing(cache), [...foreign].sort());
  // With nothing else there, the directory goes too.
  for (const f of foreign) Deno.removeSync(`${cache}/${f}`);
  Deno.writeTextFileSync(`${cache}/ldcache-ff.bin`, "x");
  const last = await gpuctl(["install", "--prefix", t.path, "--uninstall"]);
  assertEquals(last.code, 0, last.stderr);
  assertStringIncludes(last.stdout, `removed 1 file gpuctl kept in ${cache}\nremoved ${cache}\n`);
  assert(!listing(c.path).includes("cache"));

  // Only in a directory gpuctl would have written in: one others can write, or a serve directory that is a link,
  // is left as it is.
  Deno.mkdirSync(serve, { recursive: true });
  Deno.chmodSync(cache, 0o777);
  Deno.writeTextFileSync(`${cache}/ldcache-00.bin`, "x");
  Deno.writeTextFileSync(`${serve}/lock`, "x");
  assertEquals((await gpuctl(["install", "--prefix", t.path, "--uninstall"])).code, 0);
  assertEquals(listing(cache), ["ldcache-00.bin", "serve"]);
  assertEquals(listing(serve), ["lock"]);
  Deno.chmodSync(cache, 0o755);
  Deno.removeSync(serve, { recursive: true });
  Deno.mkdirSync(`${c.path}/elsewhere`);
  Deno.writeTextFileSync(`${c.path}/elsewhere/lock`, "x");
  Deno.symlinkSync(`${c.path}/elsewhere`, serve);
  const linked = await gpuctl(["install", "--prefix", t.path, "--uninstall"]);
  assertEquals(linked.code, 0, linked.stderr);
  assertEquals(listing(cache), ["serve"]);
  assertEquals(listing(`${c.path}/elsewhere`), ["lock"]);
});

Deno.test("install --cdi writes the CDI spec whose hook is the installed nvidia-container-runtime-hook; the systemd units run it", async () => {
  using t = tempDir();
  const d = await fakeDriver(standardSpec(2));
  Deno.writeTextFileSync(`${t.path}/c.jsonc`, fixtureConfig(d, { cacheDir: null }));
  const out = `${t.path}/run/cdi/nvidia.json`;
  const r = await runGpuctl(["install", "--prefix", `${t.path}/bin`, "--cdi", "--cdi-output", out], {
    env: { GPUCTL_CONFIG: `${t.path}/c.jsonc` },
  });
  assertEquals(r.code, 0, r.stderr);
  const spec = JSON.parse(Deno.readTextFileSync(out));
  assertEquals(spec.kind, "nvidia.com/gpu");
  assertEquals(spec.containerEdits.hooks.map((h: { path: string }) => h.path), [
    `${t.path}/bin/nvidia-container-runtime-hook`,
  ]);
  assert(
    (Deno.statSync(`${t.path}/bin/nvidia-container-runtime-hook`).mode! & 0o111) !== 0,
    "the hook exists",
  );
  // Running it again rewrites the spec in place (atomically) and changes nothing else.
  const again = await runGpuctl(["install", "--prefix", `${t.path}/bin`, "--cdi", "--cdi-output", out], {
    env: { GPUCTL_CONFIG: `${t.path}/c.jsonc` },
  });
  assertEquals(again.code, 0, again.stderr);
  assertEquals(JSON.parse(Deno.readTextFileSync(out)), spec);
  // --cdi-no-hook: the same devices, no hook; the options that go with --cdi refused without it.
  const noHook = await runGpuctl(
    ["install", "--prefix", `${t.path}/bin`, "--cdi", "--cdi-output", out, "--cdi-no-hook"],
    { env: { GPUCTL_CONFIG: `${t.path}/c.jsonc` } },
  );
  assertEquals(noHook.code, 0, noHook.stderr);
  const bare = JSON.parse(Deno.readTextFileSync(out));
  assertEquals(bare.containerEdits.hooks ?? [], []);
  assertEquals(bare.devices, spec.devices);
  for (const alone of [["--cdi-no-hook"], ["--cdi-output", out]]) {
    const r = await runGpuctl(["install", "--prefix", `${t.path}/bin`, ...alone], {
      env: { GPUCTL_CONFIG: `${t.path}/c.jsonc` },
    });
    assertEquals([r.code, r.stderr.trim()], [1, `gpuctl: install ${alone[0]}: goes with --cdi`]);
  }
  const unit = Deno.readTextFileSync(`${PROJECT}/deploy/systemd/gpuctl-cdi.service`);
  assertStringIncludes(
    unit,
    "ExecStart=/usr/local/bin/gpuctl install --cdi --cdi-output /var/run/cdi/nvidia.json",
  );
  assertStringIncludes(
    Deno.readTextFileSync(`${PROJECT}/deploy/systemd/gpuctl-cdi.path`),
    "Unit=gpuctl-cdi.service",
  );
});
