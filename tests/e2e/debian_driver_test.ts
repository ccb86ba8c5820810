/**
 * Debian 12's own packaged NVIDIA driver (`tests/fixtures/debian.ts`: the packages unpacked, their alternatives
 * made by their own maintainer scripts) as the driver root, with the fake driver's /proc and /dev at the same
 * version: `info` with Debian's real NVML (which finds no driver on this host, so /proc answers), `list` (every
 * library of the packages taken or rejected with a reason), `cdi generate`, `doctor` (green with an NVML that
 * answers, on a display host and on a headless one) and a container through gpuctl-runtime and real runc.
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { DEBIAN_VERSION, debianDriver, withoutHostDriver } from "../fixtures/debian.ts";
import { fakeDriver, standardSpec } from "../fixtures/driver.ts";
import { runGpuctl, tempDir } from "../helpers.ts";
import { gpuctlEnv, hookLauncher, makeBundle, runcRun, runtimeLauncher } from "./bundle.ts";

const LIB = "/usr/lib/x86_64-linux-gnu";

/** Every regular ELF shared library under `root` (root-relative): what the packages ship. */
function libraries(root: string, dir = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(`${root}${dir}`)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...libraries(root, p));
    else if (e.isFile && /\.so(\.|$)/.test(e.name)) {
      const head = new Uint8Array(4);
      const f = Deno.openSync(`${root}${p}`);
      f.readSync(head);
      f.close();
      if (head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46) out.push(p);
    }
  }
  return out.sort();
}

Deno.test("Debian's packaged driver: info, list, cdi generate, doctor and a container", async (t) => {
  const deb = await debianDriver();
  const d = await fakeDriver({
    ...standardSpec(1),
    version: DEBIAN_VERSION,
    cudaVersion: 12020,
    nvmlVersion: `12.${DEBIAN_VERSION}`,
  });
  using tmp = tempDir();
  const base = {
    driverRoot: deb.root,
    devRoot: d.dev,
    procRoot: d.proc,
    sysRoot: `${d.dir}/sys`,
    cacheDir: null,
    pluginsDir: `${tmp.path}/plugins.d`,
    cdiSpecDirs: [`${tmp.path}/cdi`],
    hookPath: hookLauncher(tmp.path),
  };
  const write = (name: string, extra: Record<string, unknown> = {}) => {
    const file = `${tmp.path}/${name}.jsonc`;
    Deno.writeTextFileSync(file, JSON.stringify({ ...base, ...extra }, null, 2));
    return file;
  };
  // Debian's own NVML, where no driver can be reached; and the fake one at the same version, which answers.
  const real = write("real");
  const answering = write("answering", { nvmlLibrary: d.nvml });
  const hidden = withoutHostDriver();

  await t.step(
    "info: Debian's NVML finds no driver; /proc/driver/nvidia answers, and gpuctl says so",
    async () => {
      const r = await runGpuctl(["info"], { env: gpuctlEnv(real), wrap: hidden });
      assertEquals(r.code, 0, r.stderr);
      assertEquals(
        r.stderr,
        `gpuctl: warning: NVML initialization failed: nvmlInit_v2 failed: Driver Not Loaded (is the nvidia kernel module loaded?); reading ${d.proc}/driver/nvidia instead\n`,
      );
      assertStringIncludes(r.stdout, `NVRM version: ${DEBIAN_VERSION}\n`);
      assertStringIncludes(r.stdout, `GPU UUID:     ${d.spec.gpus[0]!.uuid}\n`);
    },
  );

  await t.step("list: every library the packages ship is taken, or rejected with a reason", async () => {
    const r = await runGpuctl(["list", "--capabilities", "all", "--json"], {
      env: gpuctlEnv(real),
      wrap: hidden,
    });
    assertEquals(r.code, 0, r.stderr);
    const plan = JSON.parse(r.stdout);
    const taken = new Set(
      plan.mounts.filter((m: { kind: string }) => m.kind === "library").map((m: { hostPath: string }) =>
        m.hostPath.slice(deb.root.length)
      ),
    );
    const rejected = new Map<string, string>(
      plan.rejected.map((x: { path: string; reason: string }) => [x.path, x.reason]),
    );
    const shipped = libraries(deb.root);
    assert(shipped.length >= 28, `the packages ship libraries: ${shipped.length}`);
    for (const l of shipped) assert(taken.has(l) || rejected.has(l), `${l}: neither taken nor rejected`);
    // What Debian's layout hides: VDPAU's driver in vdpau/, the Vulkan producer only in nvidia/current (no
    // alternative, not in the linker cache), Wayland's EGL platform at a version of its own, with its file.
    for (
      const l of [
        `${LIB}/nvidia/current/libvdpau_nvidia.so.${DEBIAN_VERSION}`,
        `${LIB}/nvidia/current/libnvidia-vulkan-producer.so.${DEBIAN_VERSION}`,
        `${LIB}/libnvidia-egl-wayland.so.1.1.10`,
        `${LIB}/nvidia/current/libnvidia-ml.so.${DEBIAN_VERSION}`,
        `${LIB}/nvidia/current/libcuda.so.${DEBIAN_VERSION}`,
      ]
    ) assert(taken.has(l), `${l} taken`);
    assertEquals(
      rejected.get(`${LIB}/nvidia/current/libnvidia-api.so.1`),
      "the driver's, but no capability names it (a declarative plugin can add it)",
    );
    const files = plan.mounts.filter((m: { kind: string }) => m.kind === "file").map((
      m: { containerPath: string },
    ) => m.containerPath);
    assert(files.includes("/usr/share/egl/egl_external_platform.d/10_nvidia_wayland.json"), files.join(" "));
    assertEquals(files.includes("/usr/share/egl/egl_external_platform.d/15_nvidia_gbm.json"), false);
    // Nothing is given by a path through /etc/alternatives: every host path is the real file in the root.
    for (const m of plan.mounts as { hostPath: string }[]) {
      assertEquals(m.hostPath.includes("/etc/alternatives/"), false, m.hostPath);
      assert(Deno.lstatSync(m.hostPath).isSymlink === false, `${m.hostPath} is a link`);
    }
    // video alone: VDPAU's driver comes with it.
    const v = await runGpuctl(["list", "--capabilities", "video", "--libraries"], {
      env: gpuctlEnv(real),
      wrap: hidden,
    });
    assertStringIncludes(v.stdout, `${deb.root}${LIB}/nvidia/current/libvdpau_nvidia.so.${DEBIAN_VERSION}\n`);
  });

  await t.step("cdi generate and cdi list on it", async () => {
    const out = `${tmp.path}/cdi/nvidia.json`;
    const g = await runGpuctl(["cdi", "generate", "--capabilities", "all", "--output", out], {
      env: gpuctlEnv(real),
      wrap: hidden,
    });
    assertEquals(g.code, 0, g.stderr);
    const spec = JSON.parse(Deno.readTextFileSync(out));
    assertEquals(spec.devices.map((x: { name: string }) => x.name), ["0", d.spec.gpus[0]!.uuid, "all"]);
    const paths = spec.containerEdits.mounts.map((m: { hostPath: string }) => m.hostPath);
    for (const p of paths) {
      assert(p.startsWith(deb.root), p);
      assertEquals(Deno.lstatSync(p).isSymlink, false, p);
    }
    for (const l of ["libvdpau_nvidia", "libnvidia-vulkan-producer", "libnvidia-ml", "libcuda"]) {
      assert(paths.includes(`${deb.root}${LIB}/nvidia/current/${l}.so.${DEBIAN_VERSION}`), l);
    }
    const list = await runGpuctl(["cdi", "list"], { env: gpuctlEnv(real) });
    assertEquals(
      list.stdout,
      `nvidia.com/gpu=0\nnvidia.com/gpu=${d.spec.gpus[0]!.uuid}\nnvidia.com/gpu=all\n`,
    );
  });

  type Check = { id: string; status: string; saw: string; fix?: string };
  const doctor = async (config: string, wrap?: string[]) => {
    const r = await runGpuctl(["doctor", "--json", "--engine", "none", "--prefix", `${tmp.path}/bin`], {
      env: gpuctlEnv(config),
      ...(wrap ? { wrap } : {}),
    });
    const checks = JSON.parse(r.stdout).checks as Check[];
    return new Map(checks.map((c) => [c.id, c]));
  };

  await t.step("doctor with an NVML that answers: the driver's checks are green", async () => {
    const c = await doctor(answering);
    const ids = ["driver.kernel", "driver.libraries", "nvml", "devices.nodes", "cdi.specs", "plan"];
    assertEquals(
      ids.map((id) => `${id} ${c.get(id)?.status}`),
      ids.map((id) => `${id} ok`),
      JSON.stringify([...c.values()]),
    );
    assertEquals([...c.values()].filter((x) => x.status === "fail"), []);
    assertEquals(c.get("driver.libraries")!.saw, `user-space libraries ${DEBIAN_VERSION} (${d.nvml})`);
  });

  await t.step(
    "doctor resolves the alternatives inside the driver root, and names Debian's NVML",
    async () => {
      const c = await doctor(real, hidden);
      assertEquals(
        c.get("driver.libraries")!.saw,
        `user-space libraries ${DEBIAN_VERSION} (${LIB}/libnvidia-ml.so.1)`,
      );
      assertEquals(c.get("nvml")!.status, "fail");
      assertStringIncludes(c.get("nvml")!.saw, "NVML cannot open /dev/nvidiactl");
    },
  );

  await t.step("doctor on a headless host (no nvidia_modeset, no /dev/nvidia-modeset): green", async () => {
    const dev = `${tmp.path}/dev`;
    const cp = await new Deno.Command("cp", { args: ["-a", d.dev, dev] }).output();
    assert(cp.success);
    Deno.removeSync(`${dev}/nvidia-modeset`);
    Deno.mkdirSync(`${tmp.path}/sys-headless/module/nvidia`, { recursive: true });
    const headless = write("headless", {
      nvmlLibrary: d.nvml,
      devRoot: dev,
      sysRoot: `${tmp.path}/sys-headless`,
    });
    const c = await doctor(headless);
    assertEquals(c.get("devices.nodes")!.status, "ok", JSON.stringify(c.get("devices.nodes")));
    assertStringIncludes(c.get("devices.nodes")!.saw, "a headless host, so no display capability");
    assertEquals([...c.values()].filter((x) => x.status === "fail"), []);
    // Where nvidia_modeset is loaded, its missing node is a failure.
    const display = write("display", { nvmlLibrary: d.nvml, devRoot: dev });
    const f = await doctor(display);
    assertEquals(f.get("devices.nodes")!.status, "fail");
    assertStringIncludes(f.get("devices.nodes")!.saw, `${dev}/nvidia-modeset is missing`);
  });

  await t.step(
    "a container through gpuctl-runtime and runc gets Debian's files by their real names",
    async () => {
      const shim = runtimeLauncher(`${tmp.path}/shim`, gpuctlEnv(answering));
      const b = await makeBundle(`${tmp.path}/bundle`, {
        debian: true,
        env: ["NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=all"],
        args: ["sh", "-c", `ldconfig -p | grep -E 'nvidia|cuda|vdpau' | sort; ls ${LIB} | grep -c nvidia`],
      });
      const r = await runcRun(b, 60_000, shim);
      assertEquals(r.code, 0, r.stderr);
      for (
        const l of [
          `libnvidia-ml.so.1 (libc6,x86-64) => ${LIB}/libnvidia-ml.so.1`,
          `libcuda.so.1 (libc6,x86-64) => ${LIB}/libcuda.so.1`,
          `libvdpau_nvidia.so.1 (libc6,x86-64) => ${LIB}/libvdpau_nvidia.so.1`,
          `libnvidia-egl-wayland.so.1 (libc6,x86-64) => ${LIB}/libnvidia-egl-wayland.so.1`,
        ]
      ) assertStringIncludes(r.stdout, l);
    },
  );
});
