/**
 * Hostile and careless hosts against the fronts and `gpuctl serve`, with real runc and a real server; "gpuctl" is
 * a program that leaves a mark and fails, so a container that reached it shows. Each attack is the one a red team
 * tried (issue 29): an engine's environment, a serve directory another user owns, a pid the kernel gave to
 * another process, a stopped server with a full request FIFO, requests whose containers have already failed,
 * the hook's loader variables, and one tenant's 40,000 annotations queued ahead of another's container.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "../assert.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { bundleTo, FRONT_KINDS, FRONT_LABEL, logLines, standInFronts } from "../helpers.ts";
import { readConfig } from "../../config/read.ts";
import { procStart } from "../../serve/protocol.ts";
import { serveCheck } from "../../doctor/checks.ts";
import { makeBundle, runcLifecycle, startServe } from "./bundle.ts";

async function sh(script: string, env: Record<string, string> = {}) {
  const t0 = performance.now();
  const o = await new Deno.Command("sh", { args: ["-c", script], env, stdout: "piped", stderr: "piped" })
    .output();
  const dec = new TextDecoder();
  return {
    code: o.code,
    stdout: dec.decode(o.stdout),
    stderr: dec.decode(o.stderr),
    ms: performance.now() - t0,
  };
}

for (const kind of FRONT_KINDS) {
  Deno.test({
    name: `hostile serve (${
      FRONT_LABEL[kind]
    }): the fronts and gpuctl serve hold against their environment, other users, stalls and floods`,
    ignore: Deno.uid() !== 0,
    fn: async (t) => {
      const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "gpuctl-hserve-" });
      Deno.chmodSync(dir, 0o755);
      const d = await fakeDriver(standardSpec(2, { mig: false }));
      const config = `${dir}/gpuctl.jsonc`, log = `${dir}/gpuctl.log`;
      Deno.writeTextFileSync(
        config,
        fixtureConfig(d, { cacheDir: `${dir}/cache`, logFile: log, nvmlTimeout: 1 }),
      );
      const js = await bundleTo(`${dir}/gpuctl.js`);
      const { config: cfg } = await readConfig(config);
      const fronts = await standInFronts(kind, dir, config, cfg);
      const front = await fronts.runtime();
      const { ran, clear: cleanRan } = fronts.gpuctl;
      let n = 0;
      const bundle = (env: string[], args = ["/bin/true"]) => makeBundle(`${dir}/b${++n}`, { args, env });
      /** The runtime an engine with GPUCTL_CONFIG set (and `env`) runs: the front, as a script of its own. */
      let w = 0;
      const engine = (env: Record<string, string> = {}) => {
        const vars = Object.entries({ GPUCTL_CONFIG: config, ...env }).map(([k, v]) => `${k}='${v}'`).join(
          " ",
        );
        const rt = `${dir}/bin/rt-${++w}`;
        Deno.writeTextFileSync(rt, `#!/bin/sh\n${vars} exec ${front} "$@"\n`, { mode: 0o755 });
        return rt;
      };
      /** One container's lifecycle through the front (see {@link engine}). */
      const lifecycle = (b: string, env: Record<string, string> = {}) => runcLifecycle(b, engine(env));
      const server = await startServe(js, { GPUCTL_CONFIG: config }, `${dir}/cache/serve`);
      try {
        await t.step(
          "an engine's IFS=/ and a PATH without grep: a plain container goes to runc, a GPU one is served",
          async () => {
            cleanRan();
            const plain = await lifecycle(await bundle([]), { IFS: "/", PATH: "/nonexistent" });
            assertEquals(plain.code, 0, plain.stderr);
            const gpu = await lifecycle(await bundle(["NVIDIA_VISIBLE_DEVICES=0"]), {
              IFS: "/",
              PATH: "/nonexistent",
            });
            assertEquals(gpu.code, 0, gpu.stderr);
            assertEquals(logLines(log).findLast((l) => l.msg === "GPU container prepared")!.served, true);
            assertEquals(ran(), "");
          },
        );

        await t.step(
          "a pid file naming another live process: not taken for the server, gpuctl runs at once",
          async () => {
            cleanRan();
            const other = new Deno.Command("sleep", { args: ["60"] }).spawn();
            const fake = `${dir}/fake/serve`;
            Deno.mkdirSync(fake, { recursive: true, mode: 0o700 });
            await sh(`mkfifo -m 600 ${fake}/requests`);
            // The server's pid file, the pid since given to another process (its start time differs).
            Deno.writeTextFileSync(`${fake}/pid`, `${other.pid} 1\n`);
            const f = await fronts.runtime("front-reused", fake);
            const b = await bundle(["NVIDIA_VISIBLE_DEVICES=0"]);
            const r = await sh(
              `GPUCTL_CONFIG=${config} ${f} --root ${b}/state create --bundle ${b} c-reused`,
            );
            other.kill();
            await other.status;
            assertEquals(r.code, 1, "gpuctl (the stand-in) ran, at once");
            assert(r.ms < 5000, `${r.ms} ms: not the server's timeout`);
            assertStringIncludes(ran(), "runtime --root");
            const { status } = serveCheck({ ...cfg, cacheDir: `${dir}/fake` }, []);
            assertEquals(status, "ok");
            assertStringIncludes(serveCheck({ ...cfg, cacheDir: `${dir}/fake` }, []).saw, "not running");
          },
        );

        await t.step(
          "a serve directory another user owns: the front writes nothing there, and follows no link",
          async () => {
            cleanRan();
            const evil = `${dir}/evil`;
            Deno.mkdirSync(`${evil}/serve`, { recursive: true });
            Deno.writeTextFileSync(`${dir}/roots-file`, "root's\n");
            await sh(`mkfifo -m 666 ${evil}/serve/requests`);
            // A live server's pid file (this test's own process, with its real start time), and planted links.
            Deno.writeTextFileSync(`${evil}/serve/pid`, `${Deno.pid} ${procStart(Deno.pid)}\n`);
            for (let p = 1; p < 400; p++) {
              Deno.symlinkSync(`${dir}/roots-file`, `${evil}/serve/${p}.runtime.argv`);
            }
            await sh(`chown -R 65534:65534 ${evil} && chmod 777 ${evil} ${evil}/serve`);
            const before = [...Deno.readDirSync(`${evil}/serve`)].length;
            const f = await fronts.runtime("front-evil", `${evil}/serve`);
            const b = await bundle(["NVIDIA_VISIBLE_DEVICES=0"]);
            const r = await sh(`GPUCTL_CONFIG=${config} ${f} --root ${b}/state create --bundle ${b} c-evil`);
            assertEquals(r.code, 1);
            assertStringIncludes(ran(), "runtime --root", "gpuctl ran, the user's directory unused");
            assertEquals([...Deno.readDirSync(`${evil}/serve`)].length, before, "nothing written there");
            assertEquals(Deno.readTextFileSync(`${dir}/roots-file`), "root's\n");
            // gpuctl serve refuses such a cacheDir, in one line.
            Deno.writeTextFileSync(`${dir}/evil.jsonc`, JSON.stringify({ cacheDir: evil }));
            const refused = await sh(
              `GPUCTL_CONFIG=${dir}/evil.jsonc ${Deno.execPath()} run -A --quiet ${js} serve --no-warm-up`,
            );
            assertEquals(refused.code, 1);
            assertEquals(
              refused.stderr,
              `gpuctl: ${evil}: is owned by uid 65534: gpuctl serve listens only in a directory of root's (cacheDir)\n`,
            );
          },
        );

        await t.step(
          "a stopped server: a front whose request cannot even be written fails in time, never hangs",
          async () => {
            cleanRan();
            Deno.kill(server.pid, "SIGSTOP");
            try {
              // Fill the request FIFO (64 KiB), as ~1,900 queued creates would.
              const fill = await sh(
                `python3 -c "import os; fd=os.open('${dir}/cache/serve/requests', os.O_WRONLY|os.O_NONBLOCK)
try:
    while True: os.write(fd, b'x' * 63 + b'\\n')
except BlockingIOError: pass"`,
              );
              assertEquals(fill.code, 0, fill.stderr);
              const b = await bundle(["NVIDIA_VISIBLE_DEVICES=0"]);
              const r = await sh(
                `GPUCTL_CONFIG=${config} ${front} --root ${b}/state create --bundle ${b} c-full`,
              );
              assertEquals(r.code, 1);
              assertMatch(
                r.stderr,
                /^gpuctl: gpuctl serve \(pid \d+, in \S+\) did not answer in 12s and may still act/,
              );
              assert(r.ms < 16_000, `${r.ms} ms`);
              assertEquals(ran(), "", "gpuctl never runs behind a server that may still act");
              const left = [...Deno.readDirSync(`${dir}/cache/serve`)].map((e) => e.name).filter((x) =>
                /^\d+\./.test(x)
              );
              assertEquals(left, [], "the front's own files removed");
            } finally {
              Deno.kill(server.pid, "SIGCONT");
            }
          },
        );

        await t.step(
          "requests whose containers failed while the server was stopped are dropped, not done",
          async () => {
            Deno.kill(server.pid, "SIGSTOP");
            const b = await bundle(["NVIDIA_VISIBLE_DEVICES=0"]);
            const original = Deno.readTextFileSync(`${b}/config.json`);
            let r;
            try {
              r = await sh(`GPUCTL_CONFIG=${config} ${front} --root ${b}/state create --bundle ${b} c-late`);
            } finally {
              Deno.kill(server.pid, "SIGCONT");
            }
            assertEquals(r.code, 1, r.stderr);
            // Served afterwards: another container, so the late one has surely been read by now.
            const ok = await lifecycle(await bundle(["NVIDIA_VISIBLE_DEVICES=1"]));
            assertEquals(ok.code, 0, ok.stderr);
            assertEquals(
              Deno.readTextFileSync(`${b}/config.json`),
              original,
              "the abandoned container was not prepared",
            );
          },
        );

        await t.step(
          "one tenant's containers with 40,000 annotations each, queued: another's container is served in time",
          async () => {
            cleanRan();
            const annotations: Record<string, string> = {};
            for (let i = 0; i < 40_000; i++) {
              annotations[`tenant.example/key-${i}`] = `value-${i}`;
            }
            const heavy = await Promise.all(
              [1, 2, 3, 4].map(() =>
                makeBundle(`${dir}/heavy${++n}`, {
                  args: ["/bin/true"],
                  env: ["NVIDIA_VISIBLE_DEVICES=0"],
                  edit: (c) => (c.annotations = annotations),
                })
              ),
            );
            const plain = await bundle(["NVIDIA_VISIBLE_DEVICES=1"]);
            // Every script written before any starts: a script written while another lifecycle forks is held open
            // by that child until it execs, and running it then fails with ETXTBSY.
            const bundles = [...heavy, plain];
            const rts = bundles.map(() => engine());
            const all = await Promise.all(bundles.map((b, k) => runcLifecycle(b, rts[k]!)));
            for (const r of all) assertEquals(r.code, 0, r.stderr);
            assertEquals(ran(), "");
          },
        );

        await t.step("the hook front: loader variables reach nothing it runs", async () => {
          cleanRan();
          const evil = `${dir}/evil.so`;
          Deno.writeTextFileSync(
            `${dir}/evil.c`,
            `#include <stdio.h>\n__attribute__((constructor)) static void mark(void) {\n` +
              `  char c[64] = ""; FILE *f = fopen("/proc/self/comm", "r"); if (f) { fgets(c, sizeof c, f); fclose(f); }\n` +
              `  FILE *o = fopen("${dir}/preloaded", "a"); if (o) { fputs(c, o); fclose(o); } }\n`,
          );
          const cc = await sh(`gcc -shared -fPIC -o ${evil} ${dir}/evil.c`);
          assertEquals(cc.code, 0, cc.stderr);
          const hook = await fronts.hook("hook");
          // A stage the server does not take: the front runs gpuctl (the stand-in) itself.
          const r = await sh(`LD_PRELOAD=${evil} ${hook} poststop </dev/null`);
          assertEquals(r.code, 1);
          assertStringIncludes(ran(), "hook poststop");
          // Only a sh front's first shell, which the loader started with it, has it; nothing after the re-exec. A
          // binary front is static: the loader never runs, and what it runs has none of them.
          const preloaded = () => {
            try {
              return Deno.readTextFileSync(`${dir}/preloaded`).trim().split("\n");
            } catch {
              return [];
            }
          };
          assertEquals(preloaded(), kind === "binary" ? [] : ["hook"]);
        });
      } finally {
        await server.stop();
        Deno.removeSync(dir, { recursive: true });
      }
    },
  });
}
