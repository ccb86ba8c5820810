/**
 * `gpuctl system` repairs against a careless or hostile device directory: a `devRoot/char` that is a user's link
 * to another directory, and a `devRoot` a user can write (where a name can be swapped for a link to root's files
 * between two steps): refused in one line, nothing made or changed anywhere.
 */
import { assertEquals } from "../assert.ts";
import { copyDriver, fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { runGpuctl, snapshot, tempDir } from "../helpers.ts";

async function host(t: string) {
  const d = await copyDriver(await fakeDriver(standardSpec(1, { mig: false })), `${t}/driver`);
  Deno.writeTextFileSync(`${t}/c.jsonc`, fixtureConfig(d, { cacheDir: `${t}/cache` }));
  const gpuctl = (...args: string[]) =>
    runGpuctl(["system", ...args], { env: { GPUCTL_CONFIG: `${t}/c.jsonc` } });
  return { d, gpuctl };
}

Deno.test({
  name:
    "system create-dev-char-symlinks: a devRoot/char that links to another directory is refused, not followed",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    using t = tempDir();
    const { d, gpuctl } = await host(t.path);
    Deno.mkdirSync(`${t.path}/elsewhere`);
    Deno.chownSync(`${t.path}/elsewhere`, 65534, 65534);
    Deno.symlinkSync(`${t.path}/elsewhere`, `${d.dev}/char`);
    const r = await gpuctl("create-dev-char-symlinks");
    assertEquals(r.code, 1);
    assertEquals(
      r.stderr,
      `gpuctl: ${d.dev}/char: is not a directory (a symbolic link, or absent): refusing to make device files there\n`,
    );
    assertEquals([...Deno.readDirSync(`${t.path}/elsewhere`)], [], "nothing made through the link");
  },
});

Deno.test({
  name:
    "system create-device-nodes and create-dev-char-symlinks: a devRoot another user owns or can write is refused",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    using t = tempDir();
    const { d, gpuctl } = await host(t.path);
    Deno.removeSync(`${d.dev}/nvidia0`);
    const before = snapshot(d.dev);
    Deno.chmodSync(d.dev, 0o777);
    const open = await gpuctl("create-device-nodes");
    assertEquals(open.code, 1);
    assertEquals(
      open.stderr,
      `gpuctl: ${d.dev}: is writable by others: refusing to make device files there (chown root, chmod go-w)\n`,
    );
    Deno.chmodSync(d.dev, 0o755);
    Deno.chownSync(d.dev, 65534, 65534);
    const owned = await gpuctl("create-dev-char-symlinks");
    assertEquals(owned.code, 1);
    assertEquals(
      owned.stderr,
      `gpuctl: ${d.dev}: is owned by uid 65534: refusing to make device files there (chown root, chmod go-w)\n`,
    );
    assertEquals(snapshot(d.dev), before, "nothing made or changed");
    // Root's again: both repairs work.
    Deno.chownSync(d.dev, 0, 0);
    assertEquals((await gpuctl("create-device-nodes")).code, 0);
    assertEquals(Deno.lstatSync(`${d.dev}/nvidia0`).isCharDevice, true);
    assertEquals((await gpuctl("create-dev-char-symlinks")).code, 0);
    assertEquals(Deno.readLinkSync(`${d.dev}/char/195:0`), "../nvidia0");
  },
});
