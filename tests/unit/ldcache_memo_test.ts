/**
 * Kept linker-cache merges (`flows/ldcache_memo.ts`, used by `apply/ldcache.ts` `updateLdCache`): a container of an
 * image seen before gets byte for byte the cache a new merge gives, on this machine's cache and on mutated ones;
 * another image, other injected entries, a damaged, foreign or shared entry are misses; the entries stay few.
 */
import { assert, assertEquals } from "../assert.ts";
import { defaultConfig } from "../../config/schema.ts";
import { InRoot } from "../../apply/inroot.ts";
import { cacheEntries, type LdCacheMemo, memoSignature, updateLdCache } from "../../apply/ldcache.ts";
import { memoSlot, openLdCacheMemo, SLOTS } from "../../flows/ldcache_memo.ts";
import { nullLogger } from "../../log/log.ts";
import { rng, tempDir } from "../helpers.ts";

const OURS = [
  { soname: "libcuda.so.1", path: "/usr/lib/x86_64-linux-gnu/libcuda.so.1", bits: 64 as const },
  { soname: "libnvidia-ml.so.1", path: "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1", bits: 64 as const },
];

/** A rootfs with `image` as its cache; the cache updateLdCache writes there, with `memo` or none. */
function merged(dir: string, image: Uint8Array, memo: LdCacheMemo | null, ours = OURS): Uint8Array {
  Deno.mkdirSync(`${dir}/etc`, { recursive: true });
  Deno.writeFileSync(`${dir}/etc/ld.so.cache`, image);
  const root = InRoot.open(dir);
  try {
    updateLdCache(root, ours, nullLogger, memo);
  } finally {
    root.close();
  }
  return Deno.readFileSync(`${dir}/etc/ld.so.cache`);
}

/** The memo over a fresh private cacheDir, counting its hits. */
function memoIn(cacheDir: string) {
  Deno.mkdirSync(cacheDir, { recursive: true, mode: 0o700 });
  const m = openLdCacheMemo({ ...defaultConfig(), cacheDir })!;
  assert(m !== null, "a private cacheDir opens");
  const counted = {
    hits: 0,
    get: (image: Uint8Array, ours: string) => {
      const r = m.get(image, ours);
      if (r !== null) counted.hits++;
      return r;
    },
    put: (image: Uint8Array, ours: string, out: Uint8Array) => m.put(image, ours, out),
    close: () => m.close(),
  };
  return counted;
}

Deno.test("a kept merge gives byte for byte the cache a new merge gives, on this machine's cache and mutated ones", () => {
  using tmp = tempDir();
  const real = Deno.readFileSync("/etc/ld.so.cache");
  const memo = memoIn(`${tmp.path}/cache`);
  const r = rng(7);
  let kept = 0;
  for (let i = 0; i < 60; i++) {
    const image = real.slice();
    for (let k = 0, n = i === 0 ? 0 : 1 + r.int(4); k < n; k++) image[r.int(image.length)] = r.int(256);
    let fresh: Uint8Array;
    try {
      fresh = merged(`${tmp.path}/a`, image, null);
    } catch { // a cache the merge refuses: the memo is not reached either
      continue;
    }
    const before = memo.hits;
    const first = merged(`${tmp.path}/b`, image, memo);
    const second = merged(`${tmp.path}/c`, image, memo);
    assertEquals(first, fresh, `case ${i}: the merge that kept it`);
    assertEquals(second, fresh, `case ${i}: the kept one`);
    if (memo.hits > before) kept++;
  }
  memo.close();
  assert(kept > 30, `${kept} containers got a kept merge`);
});

Deno.test("a kept merge is for its image's cache and its injected entries only", () => {
  using tmp = tempDir();
  const real = Deno.readFileSync("/etc/ld.so.cache");
  const memo = memoIn(`${tmp.path}/cache`);
  merged(`${tmp.path}/a`, real, memo);
  // Another image's cache that takes the same slot: a miss, and the right cache.
  const sig = memoSignature(cacheEntries(OURS));
  const r = rng(11);
  let other = real;
  for (let i = 0; i < 1000 && other === real; i++) {
    const b = real.slice();
    const at = real.length - 1 - r.int(64);
    b[at] = b[at]! ^ (1 + r.int(255));
    if (memoSlot(b, sig) === memoSlot(real, sig)) other = b;
  }
  assert(other !== real, "another cache in the same slot");
  const hits = memo.hits;
  const fresh = merged(`${tmp.path}/b`, other, null);
  assertEquals(merged(`${tmp.path}/c`, other, memo), fresh);
  // Other injected entries: a miss.
  const more = [...OURS, {
    soname: "libnvidia-ptxjitcompiler.so.1",
    path: "/usr/lib/x/libp.so.1",
    bits: 64 as const,
  }];
  assertEquals(merged(`${tmp.path}/d`, real, memo, more), merged(`${tmp.path}/e`, real, null, more));
  assertEquals(memo.hits, hits, "no hit for another image or other entries");
  // The other image took the slot: the first one's next container merges (and takes it back), the one after not.
  const want = merged(`${tmp.path}/g`, real, null);
  assertEquals(merged(`${tmp.path}/f`, real, memo), want);
  assertEquals(memo.hits, hits, "the slot holds the other image's merge");
  assertEquals(merged(`${tmp.path}/f`, real, memo), want);
  assertEquals(memo.hits, hits + 1, "kept again");
  memo.close();
});

Deno.test("a kept merge cut short, of another image, foreign or shared is a miss, and is replaced", () => {
  using tmp = tempDir();
  const real = Deno.readFileSync("/etc/ld.so.cache");
  const cacheDir = `${tmp.path}/cache`;
  const memo = memoIn(cacheDir);
  const fresh = merged(`${tmp.path}/a`, real, memo);
  const [entry] = [...Deno.readDirSync(cacheDir)].map((e) => `${cacheDir}/${e.name}`);
  assert(entry !== undefined && /ldcache-[0-9a-f]{2}\.bin$/.test(entry), "one entry written");
  const good = Deno.readFileSync(entry);
  const damaged: [string, Uint8Array][] = [
    [
      "a byte of the image's cache it was made for changed",
      (() => {
        const b = good.slice(), at = good.indexOf(0x0a) + 100;
        b[at] = b[at]! ^ 1;
        return b;
      })(),
    ],
    ["cut short", good.subarray(0, good.length - 1)],
    ["not an entry", new TextEncoder().encode("{}\n")],
    ["empty", new Uint8Array()],
  ];
  for (const [what, bytes] of damaged) {
    Deno.writeFileSync(entry, bytes, { mode: 0o600 });
    const hits = memo.hits;
    assertEquals(merged(`${tmp.path}/b`, real, memo), fresh, what);
    assertEquals(memo.hits, hits, `${what}: a miss`);
    assertEquals(Deno.readFileSync(entry), good, `${what}: replaced`);
  }
  // Readable by others: not gpuctl's own file, ignored.
  Deno.chmodSync(entry, 0o644);
  const hits = memo.hits;
  assertEquals(merged(`${tmp.path}/c`, real, memo), fresh);
  assertEquals(memo.hits, hits, "a file others can read is not used");
  memo.close();
});

Deno.test("kept merges stay few: one slot each of a fixed number", () => {
  using tmp = tempDir();
  const real = Deno.readFileSync("/etc/ld.so.cache");
  const cacheDir = `${tmp.path}/cache`;
  const memo = memoIn(cacheDir);
  for (let i = 0; i < 3 * SLOTS; i++) {
    const ours = [{
      soname: "libcuda.so.1",
      path: `/usr/lib/x86_64-linux-gnu/v${i}/libcuda.so.1`,
      bits: 64 as const,
    }];
    merged(`${tmp.path}/a`, real, memo, ours);
  }
  memo.close();
  const n = [...Deno.readDirSync(cacheDir)].length;
  assert(n <= SLOTS && n > SLOTS / 2, `${n} entries`);
});

Deno.test("no memo without a private cacheDir", () => {
  using tmp = tempDir();
  assertEquals(openLdCacheMemo({ ...defaultConfig(), cacheDir: null }), null);
  Deno.mkdirSync(`${tmp.path}/open`, { mode: 0o777 });
  Deno.chmodSync(`${tmp.path}/open`, 0o777);
  assertEquals(openLdCacheMemo({ ...defaultConfig(), cacheDir: `${tmp.path}/open` }), null);
});

Deno.test("an image cache that changes under the merge is not kept", () => {
  using tmp = tempDir();
  const real = Deno.readFileSync("/etc/ld.so.cache");
  Deno.mkdirSync(`${tmp.path}/etc`);
  const file = `${tmp.path}/etc/ld.so.cache`;
  Deno.writeFileSync(file, real);
  let puts = 0;
  // A writer changing the image's cache in place once gpuctl has read it (the memo is asked in between).
  const memo: LdCacheMemo = {
    get: () => {
      const f = Deno.openSync(file, { write: true });
      f.seekSync(real.length - 1, Deno.SeekMode.Start);
      f.writeSync(new Uint8Array([real[real.length - 1]! ^ 1]));
      f.close();
      return null;
    },
    put: () => void puts++,
  };
  const root = InRoot.open(tmp.path);
  try {
    updateLdCache(root, OURS, nullLogger, memo);
  } finally {
    root.close();
  }
  assertEquals(puts, 0, "nothing kept for bytes the merge did not read");
});
