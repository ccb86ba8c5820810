import { assert, assertEquals, assertThrows } from "../assert.ts";
import { describeFlags, LdCacheError, parseLdCache, readLdCache } from "../../driver/ldcache.ts";
import * as ldcache from "../../driver/ldcache.ts";
import { fakeDriver, standardSpec } from "../fixtures/driver.ts";
import { tempDir } from "../helpers.ts";

/** What `ldconfig -p -C <cache>` prints, one entry per line, as [soname, flags, path]. */
async function ldconfigP(cache: string): Promise<string[]> {
  const o = await new Deno.Command("ldconfig", {
    args: ["-p", "-C", cache],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(o.success, new TextDecoder().decode(o.stderr));
  return new TextDecoder().decode(o.stdout).split("\n").filter((l) => l.startsWith("\t"))
    .map((l) => l.replace(/, hwcap: 0x[0-9a-f]+/, "").replace(/, OS ABI: [^)]*/, "").trim());
}

function ours(cache: string): string[] {
  return readLdCache(cache).map((e) => `${e.soname} (${describeFlags(e.flags)}) => ${e.path}`);
}

Deno.test("parseLdCache() agrees with ldconfig -p, entry for entry and in order, on this machine's cache", async () => {
  assertEquals(ours("/etc/ld.so.cache"), await ldconfigP("/etc/ld.so.cache"));
});

Deno.test("parseLdCache() agrees with ldconfig -p on generated caches with 64- and 32-bit entries", async () => {
  for (const layout of ["debian", "usr-local-nvidia"] as const) {
    const d = await fakeDriver({ ...standardSpec(1), layout });
    const cache = `${d.root}/etc/ld.so.cache`;
    const mine = ours(cache);
    assertEquals(mine, await ldconfigP(cache));
    assert(mine.some((l) => l.includes("(libc6,x86-64)")), "has 64-bit entries");
    assert(mine.some((l) => l.startsWith("libcuda.so.1 (ELF) =>")), "has 32-bit entries");
    const e = readLdCache(cache);
    assertEquals(e.find((x) => x.soname === "libcuda.so.1" && !x.is64)?.path.includes("/lib"), true);
  }
});

async function smallCache(dir: string): Promise<Uint8Array> {
  Deno.mkdirSync(`${dir}/lib`);
  Deno.writeTextFileSync(`${dir}/s.c`, "int f(void){return 1;}\n");
  for (const n of ["a", "bb", "ccc"]) {
    const o = await new Deno.Command("gcc", {
      args: ["-shared", "-fPIC", `-Wl,-soname,lib${n}.so.1`, "-o", `${dir}/lib/lib${n}.so.1`, `${dir}/s.c`],
    }).output();
    assert(o.success);
  }
  Deno.mkdirSync(`${dir}/etc`);
  Deno.writeTextFileSync(`${dir}/etc/ld.so.conf`, "/lib\n");
  const o = await new Deno.Command("ldconfig", { args: ["-r", dir], stderr: "piped" }).output();
  assert(o.success, new TextDecoder().decode(o.stderr));
  return Deno.readFileSync(`${dir}/etc/ld.so.cache`);
}

Deno.test("parseLdCache() on every truncation gives entries or a clear LdCacheError, never a crash", async () => {
  using d = tempDir();
  const full = await smallCache(d.path);
  assertEquals(parseLdCache(full).map((e) => e.soname).sort(), ["liba.so.1", "libbb.so.1", "libccc.so.1"]);
  let errors = 0;
  for (let len = 0; len < full.length; len++) {
    try {
      parseLdCache(full.slice(0, len), "c");
    } catch (e) {
      assert(e instanceof LdCacheError, `length ${len}: ${e}`);
      errors++;
    }
  }
  // Every cut inside the header, the table or the strings fails: only cuts into the trailing extension
  // (after the last string) may still parse.
  const stringsEnd = 48 + 3 * 24 + new DataView(full.buffer).getUint32(24, true);
  assert(
    errors >= Math.min(stringsEnd, full.length) - 1,
    `only ${errors} of ${full.length} truncations failed`,
  );
  assertEquals(
    assertThrows(() => parseLdCache(full.slice(0, 30), "c"), LdCacheError).why,
    "truncated header",
  );
});

Deno.test("parseLdCache() on randomly corrupted bytes gives entries or LdCacheError, never a crash (seeded)", async () => {
  using d = tempDir();
  const full = await smallCache(d.path);
  let seed = 0x9e3779b9;
  const rand = () => (seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32;
  for (let i = 0; i < 3000; i++) {
    const b = full.slice();
    const flips = 1 + Math.floor(rand() * 4);
    for (let k = 0; k < flips; k++) {
      // Mostly the header and entry table, where offsets and counts live.
      const at = rand() < 0.8
        ? Math.floor(rand() * Math.min(b.length, 48 + 3 * 24))
        : Math.floor(rand() * b.length);
      b[at] = Math.floor(rand() * 256);
    }
    try {
      const entries = parseLdCache(b, "c");
      for (const e of entries) assert(typeof e.soname === "string" && typeof e.path === "string");
    } catch (e) {
      assert(e instanceof LdCacheError, `iteration ${i}: ${e}`);
    }
  }
});

Deno.test("parseLdCache() skips the old ld.so-1.7.0 prefix and rejects bad magic", async () => {
  using d = tempDir();
  const cur = await smallCache(d.path);
  const oldEntries = 2;
  const oldLen = 11 + 4 + oldEntries * 12;
  const pad = ((oldLen + 7) & ~7) - oldLen;
  const combined = new Uint8Array(oldLen + pad + cur.length);
  combined.set(new TextEncoder().encode("ld.so-1.7.0"), 0);
  new DataView(combined.buffer).setUint32(11, oldEntries, true);
  combined.set(cur, oldLen + pad);
  assertEquals(parseLdCache(combined), parseLdCache(cur));
  assertEquals(
    assertThrows(
      () => parseLdCache(new TextEncoder().encode("not a cache at all, really"), "x"),
      LdCacheError,
    ).why,
    "not an ld.so.cache (bad magic)",
  );
  const bad = cur.slice();
  new DataView(bad.buffer).setUint32(20, 0xffffff, true);
  assertThrows(() => parseLdCache(bad, "x"), LdCacheError, "truncated: 16777215 entries");
});

Deno.test("libcmp() compares digit runs as numbers and puts digits after other characters", () => {
  const { libcmp } = ldcache;
  assert(libcmp("libc.so.10", "libc.so.9") > 0);
  assert(libcmp("libc.so.6", "libc.so.6") === 0);
  assert(libcmp("liba.so", "libb.so") < 0);
  assert(libcmp("lib1", "liba") > 0);
  assert(libcmp("libx.so", "libx.so.1") < 0);
  assert(libcmp("libx.so.1", "libx.so") > 0);
});

Deno.test("serializeLdCache() reproduces ldconfig's order exactly: this machine's cache, re-sorted, is byte-for-byte the same order", () => {
  const entries = readLdCache("/etc/ld.so.cache");
  const shuffled = [...entries].reverse();
  const again = ldcache.parseLdCache(ldcache.serializeLdCache(shuffled));
  assertEquals(
    again.map((e) => [e.soname, e.path, e.flags]),
    entries.map((e) => [e.soname, e.path, e.flags]),
  );
});

Deno.test("serializeLdCache() output is read back by ldconfig -p", async () => {
  using d = tempDir();
  const entries = [
    {
      soname: "libnvidia-ml.so.1",
      path: "/usr/lib64/libnvidia-ml.so.1",
      flags: ldcache.nativeFlags(64),
      is64: true,
      hwcap: 0n,
    },
    {
      soname: "libcuda.so.1",
      path: "/usr/lib64/libcuda.so.1",
      flags: ldcache.nativeFlags(64),
      is64: true,
      hwcap: 0n,
    },
    {
      soname: "libcuda.so.1",
      path: "/usr/lib/libcuda.so.1",
      flags: ldcache.nativeFlags(32),
      is64: false,
      hwcap: 0n,
    },
    {
      soname: "libhw.so.1",
      path: "/x/libhw.so.1",
      flags: ldcache.nativeFlags(64),
      is64: true,
      hwcap: ldcache.HWCAP_EXTENSION,
    },
  ];
  Deno.writeFileSync(`${d.path}/c`, ldcache.serializeLdCache(entries));
  assertEquals(await ldconfigP(`${d.path}/c`), [
    "libnvidia-ml.so.1 (libc6,x86-64) => /usr/lib64/libnvidia-ml.so.1",
    "libcuda.so.1 (libc6,x86-64) => /usr/lib64/libcuda.so.1",
    "libcuda.so.1 (libc6) => /usr/lib/libcuda.so.1",
  ]);
});
