/**
 * What a hostile spec, a hostile state, a hostile image and a failing driver try against the runtime shim and the
 * hook, on both paths where both apply. After each, the host is unchanged (a canary directory, the mount table)
 * and a refusal is one line.
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { PROJECT, runGpuctl, snapshot, tempDir } from "../helpers.ts";
import {
  gpuctlEnv,
  gpuctlEnvList,
  hookLauncher,
  hostMounts,
  makeBundle,
  runcLifecycle,
  runcRun,
  runtimeLauncher,
} from "./bundle.ts";
import { hugeCache, nestConfig } from "./hostile.ts";

interface Env {
  tmp: string;
  config: string;
  canary: string;
  shim: string;
  hookEnv: string[];
  /** Runs a bundle through a path: the shim (create/start/delete) or runc with the prestart hook. */
  run(path: "shim" | "hook", b: string): Promise<{ code: number; stdout: string; stderr: string }>;
}

async function setup(
  tmp: string,
  extra: Record<string, unknown> = {},
  denoFlags: string[] = [],
): Promise<Env> {
  const d = await fakeDriver(standardSpec(2));
  const config = `${tmp}/gpuctl.jsonc`;
  const hook = hookLauncher(tmp, `${PROJECT}/cli/main.ts`, denoFlags);
  Deno.writeTextFileSync(
    config,
    fixtureConfig(d, { hookPath: hook, cacheDir: `${tmp}/cache`, logFile: `${tmp}/gpuctl.log`, ...extra }),
  );
  const canary = `${tmp}/canary`;
  Deno.mkdirSync(`${canary}/etc`, { recursive: true });
  Deno.writeTextFileSync(`${canary}/secret`, "root:$6$SEcr3t:19000:0:99999:7:::\n");
  const shim = runtimeLauncher(tmp, gpuctlEnv(config), `${PROJECT}/cli/main.ts`, denoFlags);
  return {
    tmp,
    config,
    canary,
    shim,
    hookEnv: gpuctlEnvList(config),
    run: (path, b) => (path === "shim" ? runcLifecycle(b, shim) : runcRun(b)),
  };
}

/** A bundle for a path: with the prestart hook for "hook". */
function bundle(e: Env, path: "shim" | "hook", name: string, o: Parameters<typeof makeBundle>[1]) {
  return makeBundle(`${e.tmp}/${name}`, { ...o, ...(path === "hook" ? { hook: { env: e.hookEnv } } : {}) });
}

const refusedInOneLine = (r: { code: number; stdout: string; stderr: string }, msg: string) => {
  assert(r.code !== 0, `must be refused: ${r.stdout}`);
  assertEquals(r.stdout.includes("STARTED"), false);
  // runc quotes a hook's stderr in its own message, escaping quotes and backslashes.
  assertStringIncludes(r.stderr.replaceAll('\\"', '"').replaceAll("\\\\", "\\"), msg);
};

for (const target of ["a symlink to a host directory", "/proc/self/root/<host directory>"]) {
  Deno.test(`hostile spec: a rootfs that is ${target} is refused before anything is written (shim and hook)`, async () => {
    using tmp = tempDir();
    const e = await setup(tmp.path);
    const before = snapshot(e.canary), mounts = hostMounts();
    const b = await makeBundle(`${tmp.path}/b`, {
      debian: true,
      args: ["/bin/sh", "-c", "echo STARTED"],
      env: ["NVIDIA_VISIBLE_DEVICES=0"],
      edit: (c) => {
        (c.root as { path: string }).path = target.startsWith("/proc")
          ? `/proc/self/root${e.canary}`
          : "link";
      },
    });
    Deno.symlinkSync(e.canary, `${b}/link`);
    const text = Deno.readFileSync(`${b}/config.json`);
    const shim = await new Deno.Command(e.shim, {
      args: ["--root", `${b}/state`, "create", "--bundle", b, "c1"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(!shim.success);
    const msg = new TextDecoder().decode(shim.stderr);
    assertStringIncludes(msg, "is a symlink or passes through one");
    assertEquals(msg.trim().split("\n").length, 1, msg);
    assertEquals(Deno.readFileSync(`${b}/config.json`), text, "config.json untouched");
    // The hook, given a state for such a bundle (runc itself refuses such a rootfs before any hook runs).
    const sleeper = new Deno.Command("unshare", { args: ["-m", "sleep", "30"] }).spawn();
    try {
      const hook = await runGpuctl(["hook", "prestart"], {
        env: gpuctlEnv(e.config),
        stdin: JSON.stringify({ pid: sleeper.pid, bundle: b }),
      });
      assertEquals(hook.code, 1);
      assertStringIncludes(hook.stderr, "is a symlink or passes through one");
    } finally {
      sleeper.kill();
      await sleeper.status;
    }
    assertEquals(snapshot(e.canary), before, "host canary unchanged");
    assertEquals(hostMounts(), mounts, "host mount table unchanged");
  });
}

Deno.test("hostile spec: the shim makes every mount target by descriptor before the runtime runs", async () => {
  using tmp = tempDir();
  // A stand-in runtime that records, for each bind mount of config.json, whether its target was already there.
  Deno.writeTextFileSync(
    `${tmp.path}/fake-runc`,
    `#!/bin/sh\nb=$(pwd); while [ $# -gt 0 ]; do [ "$1" = --bundle ] && b=$2; shift; done\n` +
      `exec python3 -c 'import json,os,sys; b=sys.argv[1]; c=json.load(open(b+"/config.json"))\n` +
      `for m in c["mounts"]:\n  if m.get("type")=="bind": print(m["destination"], os.path.lexists(b+"/rootfs"+m["destination"]))' "$b"\n`,
    { mode: 0o755 },
  );
  const e = await setup(tmp.path, { runtimes: [`${tmp.path}/fake-runc`] });
  const b = await makeBundle(`${tmp.path}/b`, {
    args: ["/bin/true"],
    env: ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"],
  });
  const r = await new Deno.Command(e.shim, {
    args: ["run", "--bundle", b, "c1"],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const out = new TextDecoder().decode(r.stdout).trim().split("\n");
  assert(r.success, new TextDecoder().decode(r.stderr));
  assert(out.length > 10, out.join("\n"));
  assertEquals(out.filter((l) => !l.endsWith(" True")), [], "every target made before the runtime ran");
});

Deno.test("hostile host: a loop swapping the image's library directory with a link to a host directory: gpuctl's rootfs work leaks nothing onto the host (shim)", async () => {
  using tmp = tempDir();
  // gpuctl's part alone: everything the shim does in the rootfs (mount targets, links, the linker cache) runs
  // while the swapping goes on; the runtime is a stand-in that does nothing. runc's own part of this race — it
  // stats and creates mount targets by path — is closed by runc 1.1.14 (CVE-2024-45310), not by anything gpuctl
  // can do from outside: runc 1.1.5 does leak an empty file now and then under this loop.
  Deno.writeTextFileSync(`${tmp.path}/fake-runc`, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
  const e = await setup(tmp.path, { runtimes: [`${tmp.path}/fake-runc`] });
  const exchange = `${tmp.path}/exchange`;
  const cc = await new Deno.Command("gcc", {
    args: ["-O1", "-o", exchange, `${PROJECT}/tests/fixtures/exchange.c`],
  })
    .output();
  assert(cc.success, "gcc exchange.c");
  const host = `${tmp.path}/host-dir`;
  Deno.mkdirSync(host);
  const mounts = hostMounts();
  for (let i = 0; i < 12; i++) {
    const b = await makeBundle(`${tmp.path}/b${i}`, {
      debian: true,
      args: ["/bin/true"],
      env: ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"],
    });
    const lib = `${b}/rootfs/usr/lib/x86_64-linux-gnu`;
    Deno.mkdirSync(lib, { recursive: true });
    Deno.symlinkSync(host, `${b}/rootfs/usr/lib/evil`);
    const swap = new Deno.Command(exchange, { args: [lib, `${b}/rootfs/usr/lib/evil`, "1"], stdout: "null" })
      .spawn();
    const r = await new Deno.Command(e.shim, {
      args: ["run", "--bundle", b, `c${i}`],
      stdout: "piped",
      stderr: "piped",
    })
      .output();
    await swap.status;
    if (!r.success) {
      // Refusing is fine (the rootfs is hostile); it is said in one line.
      assertEquals(new TextDecoder().decode(r.stderr).trim().split("\n").length, 1, "refused in one line");
    }
    assertEquals(
      [...Deno.readDirSync(host)].map((x) => x.name),
      [],
      `start ${i}: nothing created on the host`,
    );
  }
  assertEquals(hostMounts(), mounts, "the host's mount table is unchanged");
});

Deno.test("hostile image: an image file that is a device node is never opened (shim and hook)", async () => {
  using tmp = tempDir();
  const e = await setup(tmp.path);
  // Watches the node for any open of it (inotify IN_OPEN), printing OPENED on the first one.
  const watcher = `import ctypes,select,sys\nlibc=ctypes.CDLL("libc.so.6")\nfd=libc.inotify_init1(0)\n` +
    `libc.inotify_add_watch(fd,sys.argv[1].encode(),0x20)\nprint("ready",flush=True)\n` +
    `r,_,_=select.select([fd],[],[],float(sys.argv[2]))\nprint("OPENED" if r else "quiet")\n`;
  for (const path of ["shim", "hook"] as const) {
    const b = await bundle(e, path, `b-${path}`, {
      debian: true,
      args: ["/bin/sh", "-c", "echo STARTED"],
      env: ["NVIDIA_VISIBLE_DEVICES=0"],
      prepare: (r) => {
        assert(
          new Deno.Command("mknod", { args: [`${r}/etc/ld.so.cache`, "c", "1", "3"] }).outputSync().success,
        );
      },
    });
    const w = new Deno.Command("python3", {
      args: ["-c", watcher, `${b}/rootfs/etc/ld.so.cache`, "30"],
      stdout: "piped",
    }).spawn();
    const reader = w.stdout.pipeThrough(new TextDecoderStream()).getReader();
    assertEquals((await reader.read()).value?.trim(), "ready");
    const r = await e.run(path, b);
    refusedInOneLine(r, "/etc/ld.so.cache in the container: is a char, not a file; refusing to read it");
    w.kill();
    const rest = (await reader.read()).value ?? "";
    await w.status;
    assertEquals(rest.includes("OPENED"), false, `${path}: the device node was opened`);
  }
});

Deno.test("hostile spec: config.json nested 100,000 deep is refused in one line; 9,999 (runc's limit) works", async () => {
  using tmp = tempDir();
  // A V8 heap of 64 MB: parsing must stay linear in the input.
  const e = await setup(tmp.path, {}, ["--v8-flags=--max-old-space-size=64"]);
  for (const path of ["shim", "hook"] as const) {
    const deep = await bundle(e, path, `deep-${path}`, {
      args: ["/bin/sh", "-c", "echo STARTED"],
      env: ["NVIDIA_VISIBLE_DEVICES=0"],
    });
    nestConfig(`${deep}/config.json`, 100_000);
    const r = path === "shim"
      ? await new Deno.Command(e.shim, {
        args: ["--root", `${deep}/state`, "create", "--bundle", deep, "c1"],
        stdout: "piped",
        stderr: "piped",
      }).output().then((o) => ({ code: o.code, stdout: "", stderr: new TextDecoder().decode(o.stderr) }))
      : await runGpuctl(["hook", "prestart"], {
        env: gpuctlEnv(e.config),
        stdin: JSON.stringify({ pid: 1, bundle: deep }),
      });
    refusedInOneLine(r, "is not valid JSON: nested deeper than 10000 levels at line 1");
    assertEquals(r.stderr.trim().split("\n").length, 1, r.stderr);
    const ok = await bundle(e, path, `ok-${path}`, {
      debian: true,
      args: ["/bin/sh", "-c", "nvml-probe -L"],
      env: ["NVIDIA_VISIBLE_DEVICES=0"],
    });
    nestConfig(`${ok}/config.json`, 9_999);
    const r2 = await e.run(path, ok);
    assertEquals(r2.code, 0, r2.stderr);
    assertStringIncludes(r2.stdout, "GPU 0:");
  }
});

Deno.test("hostile image: a 24 MB linker cache of a million entries is merged within a 64 MB V8 heap (shim and hook)", async () => {
  using tmp = tempDir();
  const e = await setup(tmp.path, {}, ["--v8-flags=--max-old-space-size=64"]);
  const cache = hugeCache(999_999);
  assert(cache.length > 23_000_000);
  for (const path of ["shim", "hook"] as const) {
    const b = await bundle(e, path, `b-${path}`, {
      debian: true,
      args: [
        "/bin/sh",
        "-c",
        "nvml-probe -L; ldconfig -p | grep -c libimage; ldconfig -p | grep -c libnvidia-ml",
      ],
      env: ["NVIDIA_VISIBLE_DEVICES=0"],
      prepare: (r) => Deno.writeFileSync(`${r}/etc/ld.so.cache`, cache),
    });
    const r = await e.run(path, b);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout.trim().split("\n").slice(1), ["999999", "1"], r.stdout);
    assertStringIncludes(r.stdout, "GPU 0:");
  }
});

Deno.test("failing driver: NVML that hangs stops the container in seconds, with one line (shim and hook)", async () => {
  using tmp = tempDir();
  const d = await fakeDriver({ ...standardSpec(1), fault: { call: "nvmlDeviceGetCount_v2", kind: "hang" } });
  const config = `${tmp.path}/gpuctl.jsonc`;
  Deno.writeTextFileSync(
    config,
    fixtureConfig(d, { nvmlTimeout: 1, cacheDir: `${tmp.path}/cache`, hookPath: hookLauncher(tmp.path) }),
  );
  const shim = runtimeLauncher(tmp.path, gpuctlEnv(config));
  for (const path of ["shim", "hook"] as const) {
    const b = await makeBundle(`${tmp.path}/b-${path}`, {
      args: ["/bin/sh", "-c", "echo STARTED"],
      env: ["NVIDIA_VISIBLE_DEVICES=0"],
      ...(path === "hook" ? { hook: { env: gpuctlEnvList(config) } } : {}),
    });
    const r = path === "shim" ? await runcLifecycle(b, shim, 30_000) : await runcRun(b, 30_000);
    refusedInOneLine(r, "gpuctl: NVML: did not answer within 1 s (stuck in nvmlDeviceGetCount_v2)");
  }
});

Deno.test("hostile spec: keys read as runc reads them; an Env or Bounding after the first does not fool gpuctl", async () => {
  using tmp = tempDir();
  const e = await setup(tmp.path, { acceptEnvWhenUnprivileged: false });
  for (const path of ["shim", "hook"] as const) {
    // Unprivileged to runc: a "Bounding" after "bounding" is the set it applies; so the environment's request is
    // not honoured under this policy.
    const caps = await bundle(e, path, `caps-${path}`, {
      args: ["/bin/sh", "-c", "ls /dev; echo STARTED"],
      env: ["NVIDIA_VISIBLE_DEVICES=all"],
      edit: (c) => {
        (c.process as { capabilities: { bounding: string[] } }).capabilities.bounding = [
          "CAP_SYS_ADMIN",
          "CAP_KILL",
        ];
      },
    });
    const t = Deno.readTextFileSync(`${caps}/config.json`);
    const at = t.indexOf('"capabilities": {') + '"capabilities": {'.length;
    assert(at > 20);
    Deno.writeTextFileSync(
      `${caps}/config.json`,
      `${t.slice(0, at)}"x":1,${t.slice(at).replace(/\n\s*}/, ',"Bounding":["CAP_KILL"]}')}`,
    );
    JSON.parse(Deno.readTextFileSync(`${caps}/config.json`));
    assertStringIncludes(Deno.readTextFileSync(`${caps}/config.json`), '"Bounding":["CAP_KILL"]');
    const r = await e.run(path, caps);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout.includes("nvidia"), false, r.stdout);
    // The environment runc gives the container is the last "Env": no GPU request in it.
    const env = await bundle(e, path, `env-${path}`, {
      args: ["/bin/sh", "-c", "ls /dev; env; echo STARTED"],
      env: ["NVIDIA_VISIBLE_DEVICES=all"],
      edit: (c) => {
        (c.process as Record<string, unknown>).Env = ["PATH=/bin", "GPU=none"];
        (c.process as { capabilities: { bounding: string[] } }).capabilities.bounding.push("CAP_SYS_ADMIN");
      },
    });
    const r2 = await e.run(path, env);
    assertEquals(r2.code, 0, r2.stderr);
    assertStringIncludes(r2.stdout, "GPU=none");
    assertEquals(r2.stdout.includes("nvidia"), false, r2.stdout);
  }
});

Deno.test("hostile state: a hook pid that is not the bundle's container is refused, and nothing is mounted", async () => {
  using tmp = tempDir();
  const e = await setup(tmp.path);
  const b = await makeBundle(`${tmp.path}/b`, { args: ["/bin/true"], env: ["NVIDIA_VISIBLE_DEVICES=0"] });
  const mounts = hostMounts();
  const host = new Deno.Command("sleep", { args: ["30"] }).spawn();
  const other = new Deno.Command("unshare", { args: ["-m", "--propagation", "private", "sleep", "30"] })
    .spawn();
  try {
    for (
      const [pid, msg] of [
        [
          host.pid,
          `container process ${host.pid}: shares this hook's mount namespace: it is not this container's process`,
        ],
        [other.pid, `container process ${other.pid}: has no mounts set up in the bundle's rootfs`],
      ] as const
    ) {
      const r = await runGpuctl(["hook", "prestart"], {
        env: gpuctlEnv(e.config),
        stdin: JSON.stringify({ pid, bundle: b }),
      });
      assertEquals(r.code, 1, r.stderr);
      assertStringIncludes(r.stderr, msg);
    }
  } finally {
    host.kill();
    other.kill();
    await host.status;
    await other.status;
  }
  assertEquals(hostMounts(), mounts, "host mount table unchanged");
});

Deno.test("hostile input: errors never echo control characters, long values or a file's content", async () => {
  using tmp = tempDir();
  const e = await setup(tmp.path);
  const id = `\u001b[31m${"A".repeat(1 << 20)}\u0007`;
  for (const path of ["shim", "hook"] as const) {
    const b = await bundle(e, path, `b-${path}`, {
      args: ["/bin/sh", "-c", "echo STARTED"],
      env: [`NVIDIA_VISIBLE_DEVICES=${id}`],
    });
    const r = await e.run(path, b);
    refusedInOneLine(r, 'gpuctl: NVIDIA_VISIBLE_DEVICES: unknown device "\\u001b[31mAAAA');
    assertEquals(r.stderr.includes("\u0007") || r.stderr.includes("\u001b"), false, "no raw ESC or BEL");
    assert(r.stderr.length < 4000, `${r.stderr.length} characters`);
    const log = Deno.readTextFileSync(`${tmp.path}/gpuctl.log`);
    assert(!/\\u0007|\\u001b\[/.test(log) || !log.includes("A".repeat(2000)), "the log holds no raw dump");
  }
  // config.json that is a link to a host file: refused, its content never quoted.
  const b = await makeBundle(`${tmp.path}/link`, { args: ["/bin/true"] });
  Deno.removeSync(`${b}/config.json`);
  Deno.symlinkSync(`${e.canary}/secret`, `${b}/config.json`);
  const r = await new Deno.Command(e.shim, {
    args: ["create", "--bundle", b, "c1"],
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  const msg = new TextDecoder().decode(r.stderr);
  assertStringIncludes(msg, `${b}/config.json: is a symlink; refusing to read it`);
  assertEquals(msg.includes("root:"), false, msg);
});

Deno.test("hostile config: a runtimes entry that leads back to gpuctl-runtime is refused, not exec'd forever", async () => {
  using tmp = tempDir();
  Deno.writeTextFileSync(
    `${tmp.path}/runc-wrapper`,
    `#!/bin/sh\nexec ${tmp.path}/bin/gpuctl-runtime "$@"\n`,
    {
      mode: 0o755,
    },
  );
  const e = await setup(tmp.path, { runtimes: [`${tmp.path}/runc-wrapper`] });
  for (const args of [["state", "x"], ["--root", `${tmp.path}/s`, "delete", "x"]]) {
    const r = await new Deno.Command(e.shim, {
      args,
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(20_000),
    })
      .output();
    const msg = new TextDecoder().decode(r.stderr);
    assertEquals(r.code, 1, msg);
    assertStringIncludes(msg, `runc-wrapper" started gpuctl-runtime again (a wrapper around it?)`);
  }
});

Deno.test("MIG management: a privileged container with NVIDIA_MIG_CONFIG_DEVICES=all gets the capability nodes and view (shim and hook)", async () => {
  using tmp = tempDir();
  const e = await setup(tmp.path);
  for (const path of ["shim", "hook"] as const) {
    const b = await bundle(e, path, `b-${path}`, {
      debian: true,
      args: [
        "/bin/sh",
        "-c",
        "ls /dev/nvidia-caps; echo ==; ls /proc/driver/nvidia/capabilities /proc/driver/nvidia/capabilities/gpu1/mig",
      ],
      env: ["NVIDIA_VISIBLE_DEVICES=1", "NVIDIA_MIG_CONFIG_DEVICES=all"],
      edit: (c) =>
        (c.process as { capabilities: { bounding: string[] } }).capabilities.bounding.push("CAP_SYS_ADMIN"),
    });
    const r = await e.run(path, b);
    assertEquals(r.code, 0, r.stderr);
    const [caps, view] = r.stdout.split("==\n");
    // The config node (minor 1) and every MIG capability node of GPU 1 (minors 202-... in the fixture's table).
    assert(caps!.split("\n").includes("nvidia-cap1"), caps);
    assert(caps!.split("\n").filter((l) => /^nvidia-cap2\d\d$/.test(l)).length >= 8, caps);
    assertStringIncludes(view!, "mig");
    assertStringIncludes(view!, "gi1\ngi2");
  }
});
