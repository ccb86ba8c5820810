/**
 * What the OS says reaches the user as one gpuctl line in words, naming the path and what to do: a read-only
 * file system, a missing directory, and a reader that went away (a quiet end, as a program killed by SIGPIPE).
 */
import { assert, assertEquals } from "../assert.ts";
import { DENO, PROJECT, tempDir } from "../helpers.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { describe, osWords } from "../../errors/mod.ts";

Deno.test("describe(): an OS error names its path first, in words, with what to do", () => {
  const e = (msg: string) => Object.assign(new Error(msg), { name: "PermissionDenied" });
  assertEquals(
    describe(e("Read-only file system (os error 30): open '/ro/x.json'")),
    "/ro/x.json: cannot open: read-only file system (a read-only file system: choose another path)",
  );
  assertEquals(
    describe(e("No such file or directory (os error 2): readfile '/a/b'")),
    "/a/b: cannot read: no such file or directory (a directory on the way does not exist)",
  );
  assertEquals(
    osWords(e("Permission denied (os error 13)")),
    "permission denied (run as root, or choose a path you may write)",
  );
  assertEquals(describe(new Error("plain words")), "plain words");
});

Deno.test({
  name: "a read-only file system as --output, and a closed pipe: one line in words; nothing at all",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const d = await fakeDriver(standardSpec(1));
    using t = tempDir();
    const config = `${t.path}/c.jsonc`;
    Deno.writeTextFileSync(config, fixtureConfig(d, { cacheDir: null }));
    Deno.mkdirSync(`${t.path}/ro`);
    const gpuctl = `${DENO} run -A --quiet ${PROJECT}/cli/main.ts`;
    const sh = async (script: string) => {
      const o = await new Deno.Command("unshare", {
        args: ["--mount", "--propagation", "private", "sh", "-c", script],
        env: { GPUCTL_CONFIG: config, NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      return {
        code: o.code,
        stdout: new TextDecoder().decode(o.stdout),
        stderr: new TextDecoder().decode(o.stderr),
      };
    };
    const ro = await sh(
      `mount -t tmpfs -o ro tmpfs ${t.path}/ro && ${gpuctl} cdi generate --hook-path /bin/true --output ${t.path}/ro/nvidia.json`,
    );
    assertEquals(ro.code, 1);
    assertEquals(
      ro.stderr,
      `gpuctl: ${t.path}/ro/nvidia.json: cannot be written: read-only file system (a read-only file system: choose another path)\n`,
    );
    // The reader gone before gpuctl writes: no "Broken pipe", exit 141.
    const pipe = await sh(`(${gpuctl} list --json; echo "rc=$?" >&2) | (exec 0<&-; true); sleep 2`);
    assertEquals(pipe.stderr.trim(), "rc=141");
    assert(!pipe.stderr.includes("Broken pipe"));
  },
});
