/**
 * InRoot against a hostile rootfs, with openat2 and with the fall-back walk: every write lands inside the
 * rootfs or is refused, and a canary directory on the host never changes.
 */
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { InRoot } from "../../apply/inroot.ts";
import { GpuctlError } from "../../errors/mod.ts";
import { makedev } from "../../ffi/libc.ts";
import { snapshot, tempDir } from "../helpers.ts";

/** A rootfs whose every interesting path points out of it, and a canary on the host. */
function hostile(base: string): { root: string; canary: string } {
  const root = `${base}/rootfs`, canary = `${base}/canary`;
  Deno.mkdirSync(`${canary}/lib`, { recursive: true });
  Deno.writeTextFileSync(`${canary}/secret`, "host secret\n");
  for (const d of ["usr/lib", "usr/bin", "etc", "lib", "var", "dev", "proc"]) {
    Deno.mkdirSync(`${root}/${d}`, { recursive: true });
  }
  Deno.symlinkSync("/", `${root}/usr/lib/x86_64-linux-gnu`); // absolute: the rootfs itself, in root
  Deno.symlinkSync(`../../../../../../../..${canary}`, `${root}/lib/firmware`); // a ../ chain out of the root
  Deno.symlinkSync(`/proc/self/root${canary}/secret`, `${root}/etc/ld.so.cache`); // a magic-link route out
  Deno.symlinkSync(canary, `${root}/usr/lib64`); // absolute to a host path
  Deno.symlinkSync("/nonexistent/run", `${root}/var/run`); // dangling
  Deno.symlinkSync("loop2", `${root}/loop1`);
  Deno.symlinkSync("loop1", `${root}/loop2`);
  const mk = new Deno.Command("mkfifo", { args: [`${root}/usr/bin/nvidia-smi`] }).outputSync();
  assert(mk.success);
  return { root, canary };
}

for (const forceWalk of [false, true]) {
  const mode = forceWalk ? "walk" : "openat2";

  Deno.test(`[${mode}] InRoot keeps every write inside a hostile rootfs`, () => {
    using t = tempDir();
    const { root, canary } = hostile(t.path);
    const before = snapshot(canary);
    const r = InRoot.open(root, { forceWalk });
    try {
      assertEquals(r.openat2Available, !forceWalk);
      // A directory symlinked to "/" means the rootfs's own root.
      const f = r.mountTarget("/usr/lib/x86_64-linux-gnu/libcuda.so.1", "file");
      r.release(f);
      assert(Deno.statSync(`${root}/libcuda.so.1`).isFile);
      // A ../ chain cannot climb above the rootfs.
      const d = r.mkdirAll("/lib/firmware/nvidia/580.95.05");
      r.release(d);
      assert(Deno.statSync(`${root}${canary}/nvidia/580.95.05`).isDirectory);
      // An absolute link to a host path is taken inside the rootfs.
      r.symlink("/usr/lib64", "libcuda.so", "libcuda.so.1");
      assertEquals(Deno.readLinkSync(`${root}${canary}/libcuda.so`), "libcuda.so.1");
      // The cache symlink is replaced by a new file, never written through.
      r.writeFileAtomic("/etc/ld.so.cache", new TextEncoder().encode("cache"));
      assertEquals(Deno.lstatSync(`${root}/etc/ld.so.cache`).isFile, true);
      assertEquals(Deno.readTextFileSync(`${root}/etc/ld.so.cache`), "cache");
      r.mknod("/dev/nvidia0", 1, 3, 0o666, 0, 0, makedev); // 1:3 is /dev/null: harmless
      assert(Deno.statSync(`${root}/dev/nvidia0`).isCharDevice);
    } finally {
      r.close();
    }
    assertEquals(snapshot(canary), before, "the host canary is unchanged");
  });

  Deno.test(`[${mode}] InRoot's symlink replaces whatever is in the way but a directory, never following it`, () => {
    using t = tempDir();
    const root = `${t.path}/rootfs`, outside = `${t.path}/outside`;
    Deno.mkdirSync(`${root}/usr/lib/x86_64-linux-gnu/libcuda.so.dir`, { recursive: true });
    Deno.writeTextFileSync(outside, "host");
    const lib = `${root}/usr/lib/x86_64-linux-gnu`;
    Deno.symlinkSync(outside, `${lib}/libcuda.so`); // to a host path
    Deno.writeTextFileSync(`${lib}/libnvidia-ml.so`, "image's file");
    Deno.symlinkSync("/nonexistent", `${lib}/libnvidia-cfg.so`); // dangling
    const r = InRoot.open(root, { forceWalk });
    try {
      for (const n of ["libcuda.so", "libnvidia-ml.so", "libnvidia-cfg.so", "libnew.so"]) {
        r.symlink("/usr/lib/x86_64-linux-gnu", n, `${n}.1`);
        assertEquals(Deno.readLinkSync(`${lib}/${n}`), `${n}.1`, n);
      }
      assertThrows(
        () => r.symlink("/usr/lib/x86_64-linux-gnu", "libcuda.so.dir", "x"),
        GpuctlError,
        "is a directory; refusing to replace it by a symlink",
      );
      assert(Deno.lstatSync(`${lib}/libcuda.so.dir`).isDirectory);
    } finally {
      r.close();
    }
    assertEquals(Deno.readTextFileSync(outside), "host");
  });

  Deno.test(`[${mode}] InRoot replaces a file whole, never writing the old one, and leaves no temporary file`, () => {
    using t = tempDir();
    const root = `${t.path}/rootfs`;
    Deno.mkdirSync(`${root}/etc/ld.so.conf.d`, { recursive: true });
    Deno.writeTextFileSync(`${root}/etc/ld.so.cache`, "image");
    Deno.linkSync(`${root}/etc/ld.so.cache`, `${t.path}/layer-copy`); // as an image layer holds it
    Deno.symlinkSync("ld.so.cache", `${root}/etc/link`);
    const r = InRoot.open(root, { forceWalk });
    const enc = new TextEncoder();
    try {
      r.writeFileAtomic("/etc/ld.so.cache", enc.encode("merged")); // a file: replaced (by exchange where it can)
      r.writeFileAtomic("/etc/link", enc.encode("was a link")); // a link: replaced, not followed
      r.writeFileAtomic("/etc/new", enc.encode("new")); // absent: created
      assertThrows(() => r.writeFileAtomic("/etc/ld.so.conf.d", enc.encode("x")), Error, "renameat"); // a directory
      assertEquals(r.writeFileAtomicWith("/etc/new", 0o644, () => false), false); // an unfinished file is dropped
    } finally {
      r.close();
    }
    assertEquals(Deno.readTextFileSync(`${root}/etc/ld.so.cache`), "merged");
    assertEquals(Deno.readTextFileSync(`${t.path}/layer-copy`), "image", "the old file is never written");
    assertEquals(Deno.lstatSync(`${root}/etc/link`).isFile, true);
    assertEquals(Deno.readTextFileSync(`${root}/etc/ld.so.cache`), "merged");
    assertEquals(Deno.readTextFileSync(`${root}/etc/new`), "new");
    assert(Deno.statSync(`${root}/etc/ld.so.conf.d`).isDirectory);
    assertEquals([...Deno.readDirSync(`${root}/etc`)].map((e) => e.name).sort(), [
      "ld.so.cache",
      "ld.so.conf.d",
      "link",
      "new",
    ]);
  });

  Deno.test(`[${mode}] InRoot refuses FIFOs, loops, magic routes and mismatched targets, and follows dangling parents inside`, () => {
    using t = tempDir();
    const { root, canary } = hostile(t.path);
    const before = snapshot(canary);
    const r = InRoot.open(root, { forceWalk });
    try {
      assertThrows(
        () => r.mountTarget("/usr/bin/nvidia-smi", "file"),
        GpuctlError,
        "is a fifo in the image, not a file; refusing",
      );
      assertThrows(() => r.readFile("/usr/bin/nvidia-smi", 100), GpuctlError, "is a fifo, not a file");
      // A dangling parent is followed by creating its target inside the rootfs.
      r.release(r.mkdirAll("/var/run/nvidia-persistenced"));
      assert(Deno.statSync(`${root}/nonexistent/run/nvidia-persistenced`).isDirectory);
      assertThrows(() => r.mountTarget("/loop1/x", "file"), GpuctlError);
      assertThrows(() => r.mountTarget("/etc", "file"), GpuctlError, "is a dir in the image, not a file");
      assertEquals(
        r.readFile("/etc/ld.so.cache", 100),
        null,
        "the link's target does not exist inside the rootfs",
      );
      // A symlink leaf is replaced by the injected file, and the replacement is reported.
      Deno.symlinkSync(`${canary}/secret`, `${root}/usr/bin/nvidia-debugdump`);
      const said: string[] = [];
      const fd = r.mountTarget("/usr/bin/nvidia-debugdump", "file", (m) => said.push(m));
      r.release(fd);
      assertEquals(said, [
        "/usr/bin/nvidia-debugdump in the image is a symlink; replaced by the injected file",
      ]);
      assert(Deno.lstatSync(`${root}/usr/bin/nvidia-debugdump`).isFile);
    } finally {
      r.close();
    }
    assertEquals(snapshot(canary), before, "the host canary is unchanged");
  });
}
