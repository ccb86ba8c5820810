/**
 * `gpuctl serve` behind the sh fronts, with real runc: GPU containers through the shim's front and through the hook's
 * front get exactly what a gpuctl process gives them, while "gpuctl" itself is a program that leaves a mark and
 * fails (so no container here starts one); a bad request fails with the server's one line; a front of another
 * configuration is sent back to gpuctl; concurrent containers each get their own GPU; a stopped server hands the
 * work back to gpuctl; a hung one stops the container after the timeout; a second server is refused.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "../assert.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import {
  bundleTo,
  DENO,
  FRONT_KINDS,
  FRONT_LABEL,
  logLines,
  standInFronts,
  writeRuntimeFront,
} from "../helpers.ts";
import { serveClient } from "../../system/install.ts";
import { readConfig } from "../../config/read.ts";
import { serveCheck } from "../../doctor/checks.ts";
import { gpuctlEnvList, makeBundle, runcLifecycle, startServe } from "./bundle.ts";

const LOOK = "ls /dev | grep nvidia | tr '\\n' ' '; echo; ls /proc/driver/nvidia/gpus | tr '\\n' ' '";

for (const kind of FRONT_KINDS) {
  Deno.test(`gpuctl serve: GPU containers through the fronts (${FRONT_LABEL[kind]}) start no gpuctl process and get exactly their GPUs`, async (t) => {
    const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "gpuctl-serve-" });
    const d = await fakeDriver(standardSpec(2, { mig: false }));
    const config = `${dir}/gpuctl.jsonc`;
    const log = `${dir}/gpuctl.log`;
    Deno.writeTextFileSync(
      config,
      fixtureConfig(d, { cacheDir: `${dir}/cache`, logFile: log, nvmlTimeout: 1 }),
    );
    const js = await bundleTo(`${dir}/gpuctl.js`);
    const { config: cfg } = await readConfig(config);
    // The fronts as install writes them, but "gpuctl" is a program that leaves a mark and fails. For the "C" kind
    // the C client is the shipped code (a packed gpuctl's launcher holds it), running "gpuctl" as the sh fronts do.
    const fronts = await standInFronts(kind, dir, config, cfg);
    await fronts.runtime();
    const hook = await fronts.hook();
    // The engine's side: GPUCTL_CONFIG set, as for gpuctl itself.
    const withConfig = (name: string, target: string, cfgPath = config) => {
      Deno.writeTextFileSync(
        `${dir}/bin/${name}`,
        `#!/bin/sh\nGPUCTL_CONFIG=${cfgPath} exec ${target} "$@"\n`,
        {
          mode: 0o755,
        },
      );
      return `${dir}/bin/${name}`;
    };
    const runtime = withConfig("rt", `${dir}/bin/front`);
    const ran = fronts.gpuctl.ran;
    let n = 0;
    const bundle = (env: string[], o: { hook?: boolean } = {}) =>
      makeBundle(`${dir}/b${++n}`, {
        args: ["/bin/sh", "-c", LOOK],
        env,
        ...(o.hook ? { hook: { path: hook, env: gpuctlEnvList(config) } } : {}),
      });
    const start = () => startServe(js, { GPUCTL_CONFIG: config }, `${dir}/cache/serve`);
    let server = await start();
    try {
      await t.step(
        "the shim's create: config.json edited, rootfs written, /proc view made by the server",
        async () => {
          const r = await runcLifecycle(await bundle(["NVIDIA_VISIBLE_DEVICES=1"]), runtime);
          assertEquals(r.code, 0, r.stderr);
          const [devs, gpus] = r.stdout.trim().split("\n");
          assertEquals(devs!.trim().split(" ").sort(), [
            "nvidia-uvm",
            "nvidia-uvm-tools",
            "nvidia1",
            "nvidiactl",
          ]);
          assertEquals(gpus!.trim().split(" ").length, 1, "the view shows one GPU");
          const line = logLines(log).findLast((l) => l.msg === "GPU container prepared")!;
          assertEquals(line.served, true);
          assertEquals(line.pid, server.pid);
          assertEquals(ran(), "", "gpuctl never ran");
        },
      );

      await t.step(
        "the descriptors an engine hands runc (--preserve-fds) reach the container untouched",
        async () => {
          const b = await makeBundle(`${dir}/b-fds`, {
            args: ["/bin/sh", "-c", "cat <&4; ls /dev | grep -c nvidia0"],
            env: ["NVIDIA_VISIBLE_DEVICES=0"],
          });
          Deno.writeTextFileSync(`${dir}/fd4`, "through fd 4\n");
          const o = await new Deno.Command("sh", {
            args: [
              "-c",
              `exec 3</dev/null 4<${dir}/fd4; ${runtime} --root ${b}/state create --preserve-fds 2 --bundle ${b} fds ` +
              `>${dir}/fds.out 2>&1 && runc --root ${b}/state start fds && sleep 0.5; ` +
              `runc --root ${b}/state delete --force fds`,
            ],
            stdin: "null",
          }).output();
          assert(o.success);
          assertEquals(Deno.readTextFileSync(`${dir}/fds.out`), "through fd 4\n1\n");
          assertEquals(ran(), "");
        },
      );

      await t.step("the prestart hook", async () => {
        const r = await runcLifecycle(await bundle(["NVIDIA_VISIBLE_DEVICES=0"], { hook: true }));
        assertEquals(r.code, 0, r.stderr);
        const [devs, gpus] = r.stdout.trim().split("\n");
        assertEquals(devs!.trim().split(" ").sort(), [
          "nvidia-uvm",
          "nvidia-uvm-tools",
          "nvidia0",
          "nvidiactl",
        ]);
        assertEquals(gpus!.trim().split(" ").length, 1);
        const line = logLines(log).findLast((l) => l.msg === "GPUs injected")!;
        assertEquals(line.pid, server.pid);
        assertEquals(ran(), "", "gpuctl never ran");
      });

      await t.step("a served config.json is byte for byte the one a gpuctl process writes", async () => {
        const env = ["NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=all"];
        const served = await bundle(env), direct = await bundle(env);
        const create = async (rt: string[], b: string, e: Record<string, string>) => {
          const o = await new Deno.Command(rt[0]!, {
            args: [...rt.slice(1), "--root", `${b}/state`, "create", "--bundle", b, "c"],
            env: e,
            // The created container holds its stdio until it starts: nothing to wait on.
            stdin: "null",
            stdout: "null",
            stderr: "null",
          }).output();
          assert(o.success, `${rt.join(" ")} create failed`);
          await new Deno.Command("runc", { args: ["--root", `${b}/state`, "delete", "--force", "c"] })
            .output();
          return Deno.readTextFileSync(`${b}/config.json`).replaceAll(b, "BUNDLE");
        };
        const a = await create([runtime], served, {});
        const b = await create([DENO, "run", "-A", "--quiet", js, "runtime"], direct, {
          GPUCTL_CONFIG: config,
        });
        assertEquals(a, b);
        assertStringIncludes(a, "/dev/nvidia1");
      });

      await t.step("a bad request stops the container with the server's one line", async () => {
        const b = await bundle(["NVIDIA_VISIBLE_DEVICES=7"]);
        const r = await runcLifecycle(b, runtime);
        assertEquals(r.code, 1);
        assertMatch(r.stderr, /^gpuctl: [^\n]*7[^\n]*\n$/);
        const list = await new Deno.Command("runc", { args: ["--root", `${b}/runc-state`, "list", "-q"] })
          .output();
        assertEquals(new TextDecoder().decode(list.stdout).trim(), "", "no container was created");
        const hooked = await runcLifecycle(await bundle(["NVIDIA_VISIBLE_DEVICES=7"], { hook: true }));
        assert(hooked.code !== 0);
        assertStringIncludes(hooked.stderr, "7");
        assertEquals(ran(), "");
      });

      await t.step(
        "rootfs files that cannot be written (made while runc creates) fail the container, deleted",
        async () => {
          const b = await makeBundle(`${dir}/b-files`, {
            args: ["/bin/true"],
            env: ["NVIDIA_VISIBLE_DEVICES=0"],
            prepare: (root) => Deno.mkdirSync(`${root}/etc/ld.so.cache`),
          });
          const r = await runcLifecycle(b, runtime);
          assertEquals(r.code, 1);
          assertMatch(r.stderr, /^gpuctl: [^\n]*ld\.so\.cache[^\n]*\n$/);
          const list = await new Deno.Command("runc", { args: ["--root", `${b}/runc-state`, "list", "-q"] })
            .output();
          assertEquals(new TextDecoder().decode(list.stdout).trim(), "", "the container is gone");
          assertEquals(ran(), "");
        },
      );

      await t.step("several containers at once each get their own GPU", async () => {
        const bs = await Promise.all([0, 1, 0, 1, 0, 1].map((i) => bundle([`NVIDIA_VISIBLE_DEVICES=${i}`])));
        const rs = await Promise.all(bs.map((b) => runcLifecycle(b, runtime)));
        rs.forEach((r, k) => {
          assertEquals(r.code, 0, r.stderr);
          assertStringIncludes(r.stdout, `nvidia${k % 2} `);
          assertEquals(r.stdout.includes(`nvidia${1 - (k % 2)} `), false);
        });
        assertEquals(ran(), "");
      });

      await t.step("a front of another configuration file is sent back to gpuctl", async () => {
        Deno.copyFileSync(config, `${dir}/other.jsonc`);
        const other = withConfig("rt-other", `${dir}/bin/front`, `${dir}/other.jsonc`);
        const r = await runcLifecycle(await bundle(["NVIDIA_VISIBLE_DEVICES=0"]), other);
        assertEquals(r.code, 1);
        assertStringIncludes(ran(), "runtime --root");
        Deno.removeSync(`${dir}/gpuctl-ran`);
      });

      await t.step("doctor: the server running, and whether the installed fronts reach it", () => {
        const good = serveCheck(cfg, [`${dir}/bin/front`, hook]);
        assertEquals([good.status, good.saw.startsWith(`running (pid ${server.pid}`)], ["ok", true]);
        Deno.writeTextFileSync(
          `${dir}/bin/old-front`,
          "#!/bin/sh\n# gpuctl install launcher\nexec gpuctl runtime\n",
        );
        const stale = serveCheck(cfg, [`${dir}/bin/old-front`, hook]);
        assertEquals([stale.status, stale.fix], ["warn", `gpuctl install --prefix ${dir}/bin`]);
      });

      await t.step("a second server is refused, naming the first", async () => {
        const o = await new Deno.Command(DENO, {
          args: ["run", "-A", "--quiet", js, "serve", "--no-warm-up"],
          env: { GPUCTL_CONFIG: config },
          stdout: "null",
          stderr: "piped",
        }).output();
        assertEquals(o.code, 1);
        assertStringIncludes(
          new TextDecoder().decode(o.stderr),
          `another one is running (pid ${server.pid})`,
        );
      });

      await t.step(
        "a server gone before the view: the container runc created without it is deleted",
        async () => {
          // A stand-in server in its own directory: it answers one create with "view", then is gone.
          const fake = `${dir}/fake/serve`;
          Deno.mkdirSync(fake, { recursive: true, mode: 0o700 });
          Deno.writeTextFileSync(
            `${dir}/fake.sh`,
            `#!/bin/sh\nmkfifo -m 600 ${fake}/requests\nexec 3<>${fake}/requests\n` +
              // its pid and start time, as a server announces itself
              `read -r st </proc/$$/stat; set -- \${st##*) }; shift 19; echo "$$ $1" > ${fake}/pid\n` +
              `read -r f <&3\nrm ${fake}/pid\nprintf '0 view\\n' 1<>"\${f%.*}.reply"\n`,
            { mode: 0o755 },
          );
          const server = new Deno.Command("sh", { args: [`${dir}/fake.sh`] }).spawn();
          while (
            !(() => {
              try {
                return Deno.statSync(`${fake}/pid`).size > 0;
              } catch {
                return false;
              }
            })()
          ) await new Promise((r) => setTimeout(r, 20));
          await fronts.runtime("front-fake", fake);
          const b = await bundle(["NVIDIA_VISIBLE_DEVICES=0"]);
          const r = await runcLifecycle(b, withConfig("rt-fake", `${dir}/bin/front-fake`));
          await server.status;
          assertEquals(r.code, 1);
          assertMatch(
            r.stderr,
            /^gpuctl: gpuctl serve stopped before container \S+ had its \/proc\/driver\/nvidia view; it was deleted\n$/,
          );
          const list = await new Deno.Command("runc", { args: ["--root", `${b}/runc-state`, "list", "-q"] })
            .output();
          assertEquals(new TextDecoder().decode(list.stdout).trim(), "", "the container is gone");
          assertEquals(ran(), "");
        },
      );

      await t.step("a hung server stops the container after the timeout, naming it", async () => {
        Deno.kill(server.pid, "SIGSTOP");
        try {
          const t0 = Date.now();
          const r = await runcLifecycle(await bundle(["NVIDIA_VISIBLE_DEVICES=0"]), runtime, 60_000);
          assertEquals(r.code, 1);
          assertStringIncludes(
            r.stderr,
            `gpuctl serve (pid ${server.pid}, in ${dir}/cache/serve) did not answer`,
          );
          assert(Date.now() - t0 < 30_000);
          assertEquals(ran(), "", "gpuctl does not run behind a server that may still act");
        } finally {
          Deno.kill(server.pid, "SIGCONT");
        }
      });

      await t.step("a stopped server hands the work back to gpuctl", async () => {
        await server.stop();
        assertEquals([...Deno.readDirSync(`${dir}/cache/serve`)].map((e) => e.name), ["lock"]);
        const r = await runcLifecycle(await bundle(["NVIDIA_VISIBLE_DEVICES=0"]), runtime);
        assertEquals(r.code, 1);
        assertStringIncludes(ran(), "runtime --root");
        // The fronts install writes run gpuctl itself.
        const inst = await new Deno.Command(DENO, {
          args: ["run", "-A", "--quiet", js, "install", "--prefix", `${dir}/real`],
          env: { GPUCTL_CONFIG: config },
          stdout: "null",
        }).output();
        assert(inst.success);
        const ok = await runcLifecycle(
          await bundle(["NVIDIA_VISIBLE_DEVICES=0"]),
          withConfig("rt-real", `${dir}/real/gpuctl-runtime`),
        );
        assertEquals(ok.code, 0, ok.stderr);
        assertStringIncludes(ok.stdout, "nvidia0 ");
        server = await start();
        const again = await runcLifecycle(
          await bundle(["NVIDIA_VISIBLE_DEVICES=1"]),
          withConfig("rt-real2", `${dir}/real/gpuctl-runtime`),
        );
        assertEquals(again.code, 0, again.stderr);
        assertEquals(logLines(log).findLast((l) => l.msg === "GPU container prepared")!.pid, server.pid);
      });
    } finally {
      await server.stop();
      Deno.removeSync(dir, { recursive: true });
    }
  });
}

Deno.test("gpuctl serve without a logFile logs to stderr, as a supervisor collects it: start, each container, each refusal, stop", async () => {
  const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "gpuctl-serve-log-" });
  try {
    const d = await fakeDriver(standardSpec(2, { mig: false }));
    const config = `${dir}/gpuctl.jsonc`;
    Deno.writeTextFileSync(config, fixtureConfig(d, { cacheDir: `${dir}/cache`, logFile: null }));
    const js = await bundleTo(`${dir}/gpuctl.js`);
    const { config: cfg } = await readConfig(config);
    Deno.mkdirSync(`${dir}/bin`);
    Deno.writeTextFileSync(`${dir}/fail`, "#!/bin/sh\nexit 1\n", { mode: 0o755 });
    writeRuntimeFront(`${dir}/bin/front`, {
      gpuctl: [`${dir}/fail`],
      config: cfg,
      configFile: config,
      serve: serveClient(cfg),
    });
    Deno.writeTextFileSync(
      `${dir}/bin/rt`,
      `#!/bin/sh\nGPUCTL_CONFIG=${config} exec ${dir}/bin/front "$@"\n`,
      {
        mode: 0o755,
      },
    );
    const journal = `${dir}/journal`;
    const server = await startServe(js, { GPUCTL_CONFIG: config }, `${dir}/cache/serve`, {
      stderrFile: journal,
    });
    const ok = await runcLifecycle(
      await makeBundle(`${dir}/ok`, { args: ["/bin/true"], env: ["NVIDIA_VISIBLE_DEVICES=1"] }),
      `${dir}/bin/rt`,
    );
    assertEquals(ok.code, 0, ok.stderr);
    const bad = await runcLifecycle(
      await makeBundle(`${dir}/bad`, { args: ["/bin/true"], env: ["NVIDIA_VISIBLE_DEVICES=7"] }),
      `${dir}/bin/rt`,
    );
    assert(bad.code !== 0);
    await server.stop();
    // Not a terminal: JSON lines, one per event, at their levels.
    const lines = Deno.readTextFileSync(journal).split("\n").filter((l) => l !== "").map((l) =>
      JSON.parse(l)
    );
    const seen = lines.map((l) => `${l.level} ${l.msg}`);
    for (
      const want of [
        "info gpuctl serve listening",
        "info GPU container prepared",
        "warn a GPU container refused",
        "info gpuctl serve stopped",
      ]
    ) assert(seen.includes(want), `${want}: ${seen.join(" | ")}`);
    assertStringIncludes(lines.find((l) => l.level === "warn").message, 'unknown device "7"');
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
