/**
 * The FFI layer against real libraries, through both backends: libc, and the fake NVML built from C.
 */
import { assert, assertEquals, assertMatch, assertThrows } from "../assert.ts";
import { openLibrary, selectBackend } from "../../ffi/mod.ts";
import { check, errno, libc, O_RDONLY, spawn, strerror, SyscallError, waitExit } from "../../ffi/libc.ts";
import { LibraryLoadError } from "../../ffi/types.ts";
import { Nvml, NvmlError } from "../../ffi/nvml.ts";
import { inventoryFromNvml, openNvml } from "../../devices/nvml.ts";
import { GpuctlError } from "../../errors/mod.ts";
import { fakeDriver, gpu, standardSpec } from "../fixtures/driver.ts";

for (const name of ["deno", "koffi"] as const) {
  Deno.test(`[${name}] libc: results, errno read right after the failing call, strerror`, async () => {
    await selectBackend(name);
    assertEquals(libc().getpid(), Deno.pid);
    assertEquals(libc().open("/nonexistent/gpuctl", O_RDONLY, 0), -1);
    assertEquals(errno(), 2);
    assertEquals(strerror(2), "No such file or directory");
    const e = assertThrows(
      () => check("open /nonexistent/x", () => libc().open("/nonexistent/x", O_RDONLY, 0)),
      SyscallError,
    );
    assertEquals([e.call, e.errno, e.message], [
      "open",
      2,
      "open /nonexistent/x: No such file or directory (errno 2)",
    ]);
    const fd = check("open /proc/self/stat", () => libc().open("/proc/self/stat", O_RDONLY, 0));
    assert(fd > 2);
    assertEquals(libc().close(fd), 0);
    assertThrows(() => libc().open("/etc\0/passwd", O_RDONLY, 0), TypeError, "NUL byte");
  });

  Deno.test(`[${name}] spawn: exactly the argv and env given, open descriptors, SIGPIPE at its default`, async () => {
    await selectBackend(name);
    const dir = Deno.makeTempDirSync({ prefix: "gpuctl-spawn-" });
    try {
      // A descriptor without close-on-exec reaches the child (as an engine's --preserve-fds reach runc).
      const fd = check("open", () => libc().open(`${dir}/out`, 0o1101, /* O_WRONLY|O_CREAT|O_TRUNC */ 0o600));
      const script =
        `{ printf "%s|" "$0" "$@"; env | sort | tr "\\n" " "; grep -E "^Sig(Ign|Blk)" /proc/self/status |
        tr "\\n" " "; } >>/proc/self/fd/${fd}; exit 7`;
      let pid: number;
      try {
        pid = spawn("/bin/sh", ["sh", "-c", script, "x y", "*"], ["A=1", "B=two words"]);
      } finally {
        libc().close(fd);
      }
      assertEquals(waitExit(pid), 7);
      const text = Deno.readTextFileSync(`${dir}/out`);
      assertEquals(text.split(" Sig")[0], `x y|*|A=1 B=two words PWD=${Deno.cwd()}`);
      // Deno ignores SIGPIPE, and an ignored signal survives exec: the child must have it back at its default.
      assert(
        !/SigIgn:\s+0+\n/.test(Deno.readTextFileSync("/proc/self/status")),
        "this test means something only where the parent ignores a signal",
      );
      const sigs = (t: string) => t.slice(t.indexOf("SigBlk")).trim().split(/\s+/);
      const [, blk, , ign] = sigs(text);
      assertEquals(blk, "0000000000000000");
      assertEquals(BigInt(`0x${ign}`) & (1n << 12n), 0n, `SIGPIPE ignored in the child (SigIgn ${ign})`);
      // The same dispositions as a child of Deno.Command (glibc's posix_spawn leaves its own two signals ignored).
      const viaDeno = await new Deno.Command("/bin/sh", {
        args: ["-c", 'grep -E "^Sig(Ign|Blk)" /proc/self/status | tr "\\n" " "'],
      }).output();
      assertEquals(sigs(new TextDecoder().decode(viaDeno.stdout)), sigs(text));
      // Killed by a signal: 128 + its number, as a shell says.
      assertEquals(waitExit(spawn("/bin/sh", ["sh", "-c", "kill -TERM $$"], [])), 128 + 15);
      const e = assertThrows(() => spawn(`${dir}/absent`, ["absent"], []), SyscallError);
      assertEquals([e.call, e.errno], ["posix_spawn", 2]);
      assertThrows(() => spawn("/bin/true", ["true", "a\0b"], []), TypeError, "NUL byte");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });

  Deno.test(`[${name}] a missing optional symbol is null, a missing required one fails the load`, async () => {
    await selectBackend(name);
    const lib = openLibrary("libc.so.6", {
      getpid: { params: [], result: "i32" },
      gpuctl_no_such_function: { params: [], result: "i32", optional: true },
      sys_getpid: { symbol: "syscall", params: ["i64"], result: "i64" },
    });
    assertEquals(lib.symbols.gpuctl_no_such_function, null);
    assertEquals(lib.symbols.getpid(), Deno.pid);
    assertEquals(lib.symbols.sys_getpid(Deno.build.arch === "aarch64" ? 172 : 39), Deno.pid);
    const e = assertThrows(
      () => openLibrary("libc.so.6", { gpuctl_no_such_function: { params: [], result: "i32" } }),
      LibraryLoadError,
    );
    assertMatch(e.reason, /gpuctl_no_such_function/);
  });

  Deno.test(`[${name}] NVML: the fake driver's GPUs and MIG devices, exactly`, async () => {
    await selectBackend(name);
    const d = await fakeDriver(standardSpec(3));
    const nvml = Nvml.open(d.nvml);
    try {
      const inv = inventoryFromNvml(nvml);
      assertEquals(inv.driver, { version: "580.95.05", cudaVersion: "13.0", nvmlVersion: "13.580.95.05" });
      assertEquals(inv.devices.length, 3);
      for (const [i, g] of d.spec.gpus.entries()) {
        const got = inv.devices[i]!;
        assertEquals(got, {
          index: i,
          minor: g.minor,
          name: g.name,
          brand: g.brand === 14 ? "NVIDIA" : "Tesla",
          uuid: g.uuid,
          busId: g.busId,
          architecture: g.computeCapability.join("."),
          memoryMiB: g.memoryMiB,
          mig: {
            enabled: g.mig?.enabled ?? false,
            devices: (g.mig?.devices ?? []).map((m, k) => ({ index: k, ...m })),
          },
        });
      }
    } finally {
      nvml.shutdown();
    }
  });

  Deno.test(`[${name}] NVML: load and init failures carry the loader's and NVML's own messages`, async () => {
    await selectBackend(name);
    const missing = assertThrows(() => Nvml.open("/nonexistent/libnvidia-ml.so.1"), LibraryLoadError);
    assertMatch(
      missing.reason,
      /^\/nonexistent\/libnvidia-ml\.so\.1: cannot open shared object file: No such file or directory$/,
    );
    const e = assertThrows(() => openNvml("/nonexistent/libnvidia-ml.so.1"), GpuctlError);
    assertEquals(e.what, "NVIDIA driver not found");
    assertMatch(
      e.why,
      /^libnvidia-ml\.so\.1 could not be loaded \(\/nonexistent\/.*No such file or directory\)$/,
    );

    const notLoaded = await fakeDriver({ ...standardSpec(1), failInit: 9 });
    const init = assertThrows(() => openNvml(notLoaded.nvml), GpuctlError);
    assertEquals(
      init.message,
      "NVML initialization failed: nvmlInit_v2 failed: Driver Not Loaded (is the nvidia kernel module loaded?)",
    );
    const raw = assertThrows(() => Nvml.open(notLoaded.nvml), NvmlError);
    assertEquals([raw.call, raw.code, raw.nvmlMessage], ["nvmlInit_v2", 9, "Driver Not Loaded"]);
  });

  Deno.test(`[${name}] NVML: a lost GPU names the GPU and the failing call`, async () => {
    await selectBackend(name);
    const d = await fakeDriver({ ...standardSpec(1), gpus: [gpu(0), gpu(1, { lost: true })] });
    const nvml = Nvml.open(d.nvml);
    try {
      const e = assertThrows(() => inventoryFromNvml(nvml), GpuctlError);
      assertEquals(
        e.message,
        "GPU 1: nvmlDeviceGetMinorNumber failed: GPU is lost (the GPU fell off the bus; check dmesg, then reset the GPU or reboot)",
      );
    } finally {
      nvml.shutdown();
    }
  });
}

Deno.test("execve: the program gets SIGPIPE at its default, though Deno ignores it", async () => {
  const libcUrl = new URL("../../ffi/libc.ts", import.meta.url).href;
  const o = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { execve } from ${JSON.stringify(libcUrl)};
       execve("/bin/sh", ["sh", "-c", "grep SigIgn /proc/self/status"], []);`,
    ],
    stderr: "inherit",
  }).output();
  assert(o.success);
  const ign = /SigIgn:\s+(\S+)/.exec(new TextDecoder().decode(o.stdout))![1]!;
  assertEquals(BigInt(`0x${ign}`) & (1n << 12n), 0n, `SIGPIPE ignored after execve (SigIgn ${ign})`);
});

Deno.test("the koffi backend really is koffi, and agrees with Deno.dlopen on addresses and memory", async () => {
  const k = await selectBackend("koffi");
  assertEquals(k.name, "koffi");
  const buf = new TextEncoder().encode("gpuctl\0");
  const kAddr = k.addressOf(buf);
  assertEquals(k.readCString(kAddr), "gpuctl");
  assertEquals([...k.read(kAddr, 3)], [103, 112, 117]);
  const dn = await selectBackend("deno");
  assertEquals(dn.readCString(dn.addressOf(buf)), "gpuctl");
});
