/**
 * The shipped artifact on a bare host (tests/e2e/bare_root.ts: busybox, glibc, runc; no Deno, Node, npm or
 * network): only `dist/gpuctl` is copied in, and it reports the fake driver, installs itself, runs GPU
 * containers through its runtime front and its hook after the copied file is gone, upgrades in place while
 * containers start, refuses to uninstall while Docker still names it, and leaves nothing behind. Then the .deb,
 * installed into a fresh bare host with dpkg --root, runs a GPU container and purges to nothing.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "../assert.ts";
import { fakeDriver, standardSpec } from "../fixtures/driver.ts";
import { artifact, DENO, PROJECT, tempDir } from "../helpers.ts";
import { VERSION } from "../../version.ts";
import { makeBundle } from "./bundle.ts";
import { inBareRoot, makeBareRoot, rootListing } from "./bare_root.ts";

/** A bundle in the bare host's /bundles/NAME that lists the GPUs NVML shows it; a hook when `hook`. */
async function bundle(root: string, name: string, env: string[], hook = false): Promise<void> {
  await makeBundle(`${root}/bundles/${name}`, {
    debian: true,
    args: ["/usr/local/bin/nvml-probe", "-L"],
    env,
    ...(hook
      ? { hook: { path: "/usr/local/bin/nvidia-container-runtime-hook", env: ["PATH=/usr/bin:/bin"] } }
      : {}),
  });
  Deno.copyFileSync(`${root}/bundles/${name}/config.json`, `${root}/bundles/${name}/config.orig.json`);
}

/** Shell: runs a fresh copy of /bundles/NAME as container ID with RUNTIME, printing what it printed. */
const RUN =
  `run() { rm -rf "/tmp/$2"; cp -a "/bundles/$1" "/tmp/$2"; cp "/tmp/$2/config.orig.json" "/tmp/$2/config.json"
  "$3" --root /run/runc run -b "/tmp/$2" "$2"; }`;

const gpuLines = (out: string) => out.split("\n").filter((l) => l.startsWith("GPU "));

Deno.test({
  name:
    "the artifact on a bare host: reports, installs, runs GPU containers after its file is gone, upgrades live, uninstalls to nothing",
  ignore: Deno.uid() !== 0,
  fn: async (t) => {
    const a = artifact();
    const d = await fakeDriver(standardSpec(2));
    const uuid = (i: number) => d.spec.gpus[i]!.uuid;
    using tmp = tempDir();
    const root = `${tmp.path}/root`;
    await makeBareRoot(root, d);
    Deno.copyFileSync(a.exe, `${root}/root/gpuctl`);
    Deno.chmodSync(`${root}/root/gpuctl`, 0o755);
    await bundle(root, "shim", ["NVIDIA_VISIBLE_DEVICES=1", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"]);
    await bundle(
      root,
      "hook",
      ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"],
      true,
    );
    const pristine = rootListing(root, ["root/gpuctl"]);
    const sh = (script: string) => inBareRoot(root, d, script);

    await t.step("nothing of Deno, Node or npm there, and no network", async () => {
      const r = await sh(
        "for p in deno node npm; do command -v $p && echo FOUND $p; done; ip link 2>&1; true",
      );
      assertEquals(r.stdout.includes("FOUND"), false, r.stdout);
      assert(!/state UP/.test(r.stdout), r.stdout);
    });

    await t.step("--version, info, list, cdi generate (JSON and YAML), doctor --json", async () => {
      const r = await sh(
        "G=/root/gpuctl; $G --version && echo ==info && $G info && echo ==list && $G list && " +
          "echo ==json && $G cdi generate --hook-path /bin/true && echo ==yaml && $G cdi generate --hook-path /bin/true --format yaml && " +
          "echo ==doctor && { $G doctor --json; echo rc=$?; }",
      );
      assertEquals(r.stderr, "");
      const [version, info, list, json, yaml, doctor] = r.stdout.split(/^==\w+\n/m);
      assertMatch(
        version!,
        new RegExp(`^gpuctl ${VERSION.replaceAll(".", "\\.")}\\n(packed|compiled), commit `),
      );
      assertStringIncludes(info!, uuid(0));
      assertStringIncludes(info!, uuid(1));
      assertStringIncludes(list!, "/fixture/root/usr/lib/x86_64-linux-gnu/libcuda.so.");
      assertEquals(JSON.parse(json!).kind, "nvidia.com/gpu");
      assertStringIncludes(yaml!, "kind: nvidia.com/gpu\n");
      const report = JSON.parse(doctor!.slice(0, doctor!.lastIndexOf("rc=")));
      const status = Object.fromEntries(
        report.checks.map((c: { id: string; status: string }) => [c.id, c.status]),
      );
      assertEquals([status["driver.kernel"], status.nvml, status.plan], ["ok", "ok", "ok"], doctor);
    });

    await t.step(
      "install; the copied file deleted; a GPU container through gpuctl-runtime and one through the hook",
      async () => {
        const r = await sh(`${RUN}
/root/gpuctl install && rm /root/gpuctl
echo ==shim; run shim c1 /usr/local/bin/gpuctl-runtime
echo ==hook; run hook c2 /usr/sbin/runc`);
        assertEquals(r.code, 0, r.stdout + r.stderr);
        const [installed, shim, hook] = r.stdout.split(/^==\w+\n/m);
        assertMatch(installed!, /\/usr\/local\/bin\/gpuctl → \/usr\/local\/lib\/gpuctl\/[^/]+\/gpuctl\n/);
        assertEquals(gpuLines(shim!), [`GPU 0: ${d.spec.gpus[1]!.name} (UUID: ${uuid(1)})`]);
        assertEquals(gpuLines(hook!).length, 1, hook);
        assertStringIncludes(hook!, uuid(0));
      },
    );

    await t.step(
      "Deno's code cache is kept by a run that ends on its own, and the mark that lets GPU containers' gpuctl end at once",
      async () => {
        // The cache is Deno's, in the installed copy's own Deno directory. Install's first run left it and the mark
        // (cli/finish.ts); with both gone, a GPU container's gpuctl ends on its own: Deno writes the cache again
        // and gpuctl its mark. The containers before ended at once (the mark was there); all got their GPU.
        const r = await sh(`${RUN}
D=$(echo /usr/local/lib/gpuctl/*/.gpuctl-runtime/*/deno-dir); M=$D/gpuctl-code-cache-kept
cache() { cat $D/v8_code_cache_v2 $D/v8_code_cache_v2-wal 2>/dev/null | wc -c; }
[ -f $M ] && echo marked
rm -f $D/v8_code_cache_v2* $M; echo "removed $(cache)"
rm -rf /tmp/k1; cp -a /bundles/shim /tmp/k1; cp /tmp/k1/config.orig.json /tmp/k1/config.json
/usr/local/bin/gpuctl-runtime --root /run/runc create -b /tmp/k1 --pid-file /tmp/k1.pid k1 </dev/null >/dev/null 2>&1
echo create=$?; /usr/sbin/runc --root /run/runc delete -f k1
echo "written $(cache)"; [ -f $M ] && echo marked again`);
        assertEquals(r.code, 0, r.stdout + r.stderr);
        assertStringIncludes(r.stdout, "marked\nremoved 0\ncreate=0\n");
        // The bundle's cache alone is hundreds of KiB.
        assert(Number(r.stdout.match(/^written (\d+)$/m)?.[1]) > 300_000, r.stdout);
        assertStringIncludes(r.stdout, "marked again\n");
      },
    );

    await t.step(
      "a second build installed over it while containers start in a loop: every one gets its GPU",
      async () => {
        const second = `${tmp.path}/second`;
        const b = await new Deno.Command(DENO, {
          args: ["run", "-A", "--quiet", `${PROJECT}/tools/dist.ts`, "--only", "gpuctl", "--out", second],
          env: { SOURCE_DATE_EPOCH: "1700000000", GPUCTL_DIST_KIND: "packed" },
          stderr: "piped",
        }).output();
        assert(b.success, new TextDecoder().decode(b.stderr));
        Deno.copyFileSync(`${second}/gpuctl`, `${root}/root/gpuctl2`);
        Deno.chmodSync(`${root}/root/gpuctl2`, 0o755);
        const before = Deno.readLinkSync(`${root}/usr/local/bin/gpuctl`);
        const r = await sh(`${RUN}
( i=0; after=0
  while [ $after -lt 3 ]; do
    i=$((i+1)); [ -e /tmp/upgraded ] && after=$((after+1))
    run shim loop$i /usr/local/bin/gpuctl-runtime > /tmp/out.$i 2>&1; echo "$i $?" >> /tmp/rcs
  done ) &
sleep 1
/root/gpuctl2 install > /tmp/install.out 2>&1; echo "install $?" >> /tmp/rcs; touch /tmp/upgraded
wait
cat /tmp/rcs; for f in /tmp/out.*; do grep -c "^GPU 0: .*${
          uuid(1)
        }" "$f" || { echo "WRONG $f"; cat "$f"; }; done
cat /tmp/install.out; rm /root/gpuctl2`);
        assertEquals(r.code, 0, r.stderr);
        const rcs = r.stdout.split("\n").filter((l) => /^(\d+|install) \d+$/.test(l));
        assert(rcs.length >= 5, r.stdout);
        assertEquals(rcs.filter((l) => !l.endsWith(" 0")), [], r.stdout);
        assertEquals(r.stdout.includes("WRONG"), false, r.stdout);
        const after = Deno.readLinkSync(`${root}/usr/local/bin/gpuctl`);
        assert(after !== before, "the link names the new build");
        assert(
          Deno.statSync(`${root}${before}`).isFile,
          "the previous build is kept for what started with it",
        );
      },
    );

    await t.step(
      "configure docker --set-default; uninstall refused with daemon.json untouched; --remove, then uninstall: nothing left",
      async () => {
        const r1 = await sh(
          "gpuctl configure docker --set-default >/dev/null && sha256sum /etc/docker/daemon.json",
        );
        assertEquals(r1.code, 0, r1.stderr);
        const r2 = await sh(
          "gpuctl install --uninstall; echo rc=$?; sha256sum /etc/docker/daemon.json; ls /usr/local/bin",
        );
        assertStringIncludes(r2.stdout, "rc=1\n");
        assertStringIncludes(r2.stdout, r1.stdout.trim(), "daemon.json untouched");
        assertStringIncludes(r2.stdout, "gpuctl-runtime");
        assertStringIncludes(
          r2.stderr,
          `gpuctl: /etc/docker/daemon.json: Docker's runtime "nvidia", its default runtime → /usr/local/bin/gpuctl-runtime; run: gpuctl configure docker --remove\n`,
        );
        // A GPU container first, in the same host (its /run is fresh each time): what gpuctl keeps at run time in
        // /run/gpuctl (the snapshot, the kept plan and linker cache) goes with the uninstall.
        const r3 = await sh(`${RUN}
run shim c9 /usr/local/bin/gpuctl-runtime >/dev/null && ls /run/gpuctl
gpuctl configure docker --remove && gpuctl install --uninstall || exit 9
ls -A /run/gpuctl 2>&1; exit 0`);
        assertEquals(r3.code, 0, r3.stderr);
        assertMatch(r3.stdout, /^snapshot-[0-9a-f]{16}\.json$/m);
        assertMatch(
          r3.stdout,
          /^removed [0-9]+ files gpuctl kept in \/run\/gpuctl\nremoved \/run\/gpuctl\n/m,
        );
        assertStringIncludes(r3.stdout, "ls: /run/gpuctl: No such file or directory");
        assertEquals(rootListing(root, ["root/gpuctl"]), pristine);
      },
    );
  },
});

Deno.test({
  name: "the .deb on a bare host: dpkg --root installs it, a GPU container runs, dpkg --purge leaves nothing",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const d = await fakeDriver(standardSpec(2));
    using tmp = tempDir();
    const out = `${tmp.path}/dist`;
    const b = await new Deno.Command(DENO, {
      args: ["run", "-A", "--quiet", `${PROJECT}/tools/dist.ts`, "--out", out],
      env: { GPUCTL_DIST_KIND: "packed" },
      stderr: "piped",
    }).output();
    assert(b.success, new TextDecoder().decode(b.stderr));
    const sums = await new Deno.Command("sha256sum", { args: ["-c", "SHA256SUMS"], cwd: out, stdout: "null" })
      .output();
    assert(sums.success, "SHA256SUMS verifies");
    const deb = [...Deno.readDirSync(out)].find((e) => e.name.endsWith(".deb"))!.name;
    const root = `${tmp.path}/root`;
    await makeBareRoot(root, d);
    for (const f of ["status", "available"]) {
      Deno.mkdirSync(`${root}/var/lib/dpkg/info`, { recursive: true });
      Deno.mkdirSync(`${root}/var/lib/dpkg/updates`, { recursive: true });
      Deno.writeTextFileSync(`${root}/var/lib/dpkg/${f}`, "");
    }
    Deno.copyFileSync(`${out}/${deb}`, `${root}/root/${deb}`);
    await bundle(root, "shim", ["NVIDIA_VISIBLE_DEVICES=1", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"]);
    const pristine = rootListing(root, ["var/lib/dpkg", `root/${deb}`]);
    // dpkg runs outside the bare host and its maintainer scripts inside it (dpkg --root chroots for them); the
    // bare host has no libc6 package, hence --force-depends.
    const dpkg = (args: string) =>
      inBareRoot(root, d, "", {
        outside:
          `PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg --root="$R" --force-depends --log=/dev/null ${args}`,
      });
    const i = await dpkg(`-i "$R/root/${deb}"`);
    assertEquals(i.code, 0, i.stdout + i.stderr);
    assertStringIncludes(i.stdout, "/usr/bin/gpuctl-runtime → front");
    const r = await inBareRoot(root, d, `${RUN}\nrun shim c1 /usr/bin/gpuctl-runtime`);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(gpuLines(r.stdout), [`GPU 0: ${d.spec.gpus[1]!.name} (UUID: ${d.spec.gpus[1]!.uuid})`]);
    const p = await dpkg("--purge gpuctl");
    assertEquals(p.code, 0, p.stdout + p.stderr);
    assertEquals(rootListing(root, ["var/lib/dpkg", `root/${deb}`]), pristine);
  },
});
