/**
 * The bootstrap's wait for the dpkg lock, against the real apt: another process holds
 * /var/lib/dpkg/lock-frontend (as a running apt does, with an fcntl lock) while the bootstrap's apt step runs for
 * a package that is already installed (so apt changes nothing).
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { PROJECT } from "../helpers.ts";

const LOCK = "/var/lib/dpkg/lock-frontend";

/** Holds the dpkg frontend lock for `seconds` (until killed); resolves once it is held. */
async function holdLock(seconds: number): Promise<Deno.ChildProcess> {
  const p = new Deno.Command("python3", {
    args: [
      "-c",
      `import fcntl, sys, time\nf = open("${LOCK}", "w")\nfcntl.lockf(f, fcntl.LOCK_EX)\nprint("held", flush=True)\ntime.sleep(${seconds})`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = p.stdout.getReader();
  const first = await reader.read();
  reader.releaseLock();
  assertStringIncludes(new TextDecoder().decode(first.value), "held");
  return p;
}

async function aptStep(wait: number) {
  const t0 = performance.now();
  const o = await new Deno.Command("bash", {
    args: [`${PROJECT}/tools/bootstrap.sh`, "--apt-only", "time"],
    env: { GPUCTL_APT_LOCK_WAIT: String(wait) },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: o.code, stderr: new TextDecoder().decode(o.stderr), ms: performance.now() - t0 };
}

Deno.test({
  name:
    "bootstrap: waits for a dpkg lock another process holds, then goes on; past its bound, one line names the lock",
  ignore: Deno.uid() !== 0,
  sanitizeResources: false,
  fn: async (t) => {
    await t.step("held for 4 s, bound 60 s: waits, says so, and succeeds", async () => {
      const holder = await holdLock(4);
      try {
        const r = await aptStep(60);
        assertEquals(r.code, 0, r.stderr);
        assertStringIncludes(r.stderr, `waiting for ${LOCK}, held by process ${holder.pid} (python3)`);
        assert(r.ms > 2500, `it waited (${r.ms} ms)`);
      } finally {
        await holder.status;
      }
    });
    await t.step("held past a 3 s bound: fails with one line naming the lock and its holder", async () => {
      const holder = await holdLock(60);
      try {
        const r = await aptStep(3);
        assertEquals(r.code, 1, r.stderr);
        const last = r.stderr.trim().split("\n").at(-1)!;
        assertEquals(
          last,
          `bootstrap: the lock ${LOCK} is still held by process ${holder.pid} (python3) after 3 s: let that apt finish (or set GPUCTL_APT_LOCK_WAIT) and run this again`,
        );
      } finally {
        holder.kill("SIGKILL");
        await holder.status;
      }
    });
  },
});
