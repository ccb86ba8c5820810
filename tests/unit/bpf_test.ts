/**
 * The cgroup v2 device-program replacement against the real kernel: a cgroup2 hierarchy mounted by the test, a
 * runc-like program that allows only /dev/null, a process in that cgroup, and gpuctl's replacement.
 */
import { assert, assertEquals } from "../assert.ts";
import {
  allowOnlyProgram,
  allowPrologue,
  allowV2,
  attachDeviceProgram,
  BPF_F_ALLOW_MULTI,
  decode,
  encode,
  loadDeviceProgram,
  queryDevicePrograms,
} from "../../apply/bpf.ts";
import { check, libc, O_CLOEXEC, O_DIRECTORY, O_RDONLY } from "../../ffi/libc.ts";

Deno.test("encode()/decode() round-trip eBPF instructions", () => {
  const p = allowOnlyProgram([{ major: 195, minor: 255 }, { major: 508, minor: 0 }]);
  assertEquals(decode(encode(p)), p);
  assertEquals(allowPrologue([{ major: 1, minor: 2 }]).length, 5 + 5);
});

/** Whether a process placed in cgroup `dir` may read `dev`. */
async function canRead(dir: string, dev: string): Promise<boolean> {
  const o = await new Deno.Command("sh", {
    args: ["-c", `echo $$ > ${dir}/cgroup.procs && exec head -c1 ${dev}`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return o.success;
}

Deno.test({
  name: "allowV2() lets a cgroup v2 process open the allowed nodes and keeps the original program's rules",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    // Under the prefix other tests leave out of their host mount-table comparisons.
    const mnt = Deno.makeTempDirSync({ dir: "/tmp", prefix: "gpuctl-cgroup2-" });
    const m = await new Deno.Command("mount", { args: ["-t", "cgroup2", "none", mnt], stderr: "piped" })
      .output();
    assert(m.success, new TextDecoder().decode(m.stderr));
    const cg = `${mnt}/gpuctl-test-${Deno.pid}`;
    Deno.mkdirSync(cg);
    try {
      // What runc does: a program allowing only what the spec lists (here /dev/null), multi-attached.
      const fd = check(`open ${cg}`, () => libc().open(cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0));
      const prog = loadDeviceProgram(allowOnlyProgram([{ major: 1, minor: 3 }]));
      attachDeviceProgram(fd, prog, BPF_F_ALLOW_MULTI);
      libc().close(prog);
      assertEquals(await canRead(cg, "/dev/null"), true);
      assertEquals(await canRead(cg, "/dev/zero"), false, "denied before");

      assertEquals(allowV2(cg, [{ major: 1, minor: 5 }]), 1, "one program replaced");
      assertEquals(await canRead(cg, "/dev/zero"), true, "allowed after");
      assertEquals(await canRead(cg, "/dev/null"), true, "the original rules still apply");
      assertEquals(await canRead(cg, "/dev/urandom"), false, "and so does the original denial");
      assertEquals(queryDevicePrograms(fd).ids.length, 1, "replaced, not added");
      libc().close(fd);
    } finally {
      await new Promise((ok) => setTimeout(ok, 50));
      try {
        Deno.removeSync(cg);
      } catch { /* processes may linger a moment */ }
      await new Deno.Command("umount", { args: ["-l", mnt] }).output();
      Deno.removeSync(mnt);
    }
  },
});
