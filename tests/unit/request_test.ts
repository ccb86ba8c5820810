import { assert, assertEquals, assertThrows } from "../assert.ts";
import {
  type GpuRequest,
  legacyCudaRequirement,
  readRequest,
  type RequestPolicy,
  VOLUME_ROOT,
} from "../../request/request.ts";
import {
  checkRequirements,
  compareVersions,
  type HostFacts,
  parseRequirement,
  requirementBrand,
} from "../../request/requirements.ts";
import { type OciSpec, parseSpec } from "../../oci/spec.ts";
import { GpuctlError } from "../../errors/mod.ts";
import { BRANDS } from "../../devices/types.ts";

const policy: RequestPolicy = {
  acceptEnvWhenUnprivileged: true,
  acceptVolumeMounts: false,
  disableRequire: false,
  swarmResource: [],
  cdiAnnotationPrefixes: ["cdi.k8s.io/"],
  cdiKinds: ["nvidia.com/gpu"],
  cdiAnnotationKinds: [],
};
const spec = (
  env: string[],
  o: { privileged?: boolean; mounts?: string[]; annotations?: Record<string, string> } = {},
): OciSpec =>
  parseSpec(
    JSON.stringify({
      process: {
        env,
        capabilities: { bounding: o.privileged ? ["CAP_CHOWN", "CAP_SYS_ADMIN"] : ["CAP_CHOWN"] },
      },
      mounts: (o.mounts ?? []).map((d) => ({
        destination: `${VOLUME_ROOT}/${d}`,
        source: "/dev/null",
        type: "bind",
      })),
      ...(o.annotations ? { annotations: o.annotations } : {}),
    }),
    "config.json",
  );
/** The request for `env`, which must be a GPU request. */
const gpu = (env: string[], p = policy, o = {}): GpuRequest => {
  const r = readRequest(spec(env, o), p);
  assert(r !== null, `a GPU request: ${env.join(" ")}`);
  return r;
};
const host: HostFacts = { cuda: "12.4", driver: "550.54.15", arch: "9.0", brand: "tesla" };

Deno.test("compareVersions() treats NVIDIA's dotted numbers numerically", () => {
  assertEquals(compareVersions("535.104.05", "535.54.03"), 1);
  assertEquals(compareVersions("12.4", "12.4.0"), 0);
  assertEquals(compareVersions("9.0", "8.6"), 1);
  assertEquals(compareVersions("1.2.3.4", "1.2.3.5"), -1);
});

Deno.test("requirements: space is OR, comma is AND, separate variables AND; missing data passes", () => {
  const ok = (v: string, h = host) => {
    try {
      checkRequirements([parseRequirement("NVIDIA_REQUIRE_X", v)], [h]);
      return true;
    } catch (e) {
      assert(e instanceof GpuctlError);
      return false;
    }
  };
  assert(ok("cuda>=12.0"));
  assert(!ok("cuda>=12.5"));
  assert(ok("cuda>=12.5 driver>=550"), "OR: the second alternative holds");
  assert(!ok("cuda>=12.0,driver>=560"), "AND: the second condition fails");
  assert(ok("cuda>=11.0,driver>=450 cuda>=99"));
  assert(ok("arch=9.0") && ok("arch=9") && !ok("arch<9.0") && ok("arch!=8.0"));
  assert(ok("brand=TESLA") && !ok("brand!=tesla") && !ok("brand=geforce"));
  assert(ok("cuda<13 cuda>20"));
  assert(ok("arch=7.0", { ...host, arch: null }), "no arch known (no GPU): passes");
  const two = [
    parseRequirement("NVIDIA_REQUIRE_CUDA", "cuda>=12.0"),
    parseRequirement("NVIDIA_REQUIRE_DRIVER", "driver>=560"),
  ];
  const e = assertThrows(() => checkRequirements(two, [host]), GpuctlError);
  assertEquals(
    e.message,
    'NVIDIA_REQUIRE_DRIVER: unsatisfied requirement "driver>=560": this host has cuda 12.4, driver 550.54.15, arch 9.0, brand tesla (upgrade the driver, or set NVIDIA_DISABLE_REQUIRE=true)',
  );
});

Deno.test("requirements: every selected GPU must satisfy them", () => {
  const r = [parseRequirement("NVIDIA_REQUIRE_ARCH", "arch>=8.0")];
  checkRequirements(r, [host, { ...host, arch: "8.6" }]);
  assertThrows(() => checkRequirements(r, [host, { ...host, arch: "7.5" }]), GpuctlError, "arch 7.5");
});

Deno.test("requirements: bad conditions are errors naming the variable", () => {
  assertEquals(
    assertThrows(() => parseRequirement("NVIDIA_REQUIRE_CUDA", "cuda>=twelve"), GpuctlError).message,
    'NVIDIA_REQUIRE_CUDA: "cuda>=twelve": cuda needs a dotted number',
  );
  assertThrows(
    () => parseRequirement("NVIDIA_REQUIRE_BRAND", "brand>tesla"),
    GpuctlError,
    "brand takes only = or !=",
  );
  assertEquals(
    assertThrows(() => parseRequirement("NVIDIA_REQUIRE_X", "vram>=80"), GpuctlError).message,
    'NVIDIA_REQUIRE_X: cannot parse the condition "vram>=80" (expected e.g. cuda>=12.4, driver>=535, arch=9.0, brand=tesla)',
  );
});

Deno.test("readRequest(): devices, capabilities and requirements from the environment", () => {
  const r = gpu([
    "NVIDIA_VISIBLE_DEVICES=0,1",
    "NVIDIA_DRIVER_CAPABILITIES=compute",
    "NVIDIA_REQUIRE_CUDA=cuda>=12",
  ]);
  assertEquals([r.devices, r.capabilities, r.requirements.map((x) => x.source), r.privileged], [
    { kind: "list", ids: ["0", "1"] },
    "compute",
    ["NVIDIA_REQUIRE_CUDA"],
    false,
  ]);
  assertEquals(readRequest(spec(["PATH=/bin"]), policy), null);
  assertEquals(gpu(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_VISIBLE_DEVICES=2"]).devices, {
    kind: "list",
    ids: ["2"],
  }, "a later duplicate wins");
  assertEquals(
    gpu(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_CUDA=cuda>=99", "NVIDIA_DISABLE_REQUIRE=true"])
      .requirements,
    [],
  );
  assertEquals(
    gpu(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_CUDA=cuda>=99"], { ...policy, disableRequire: true })
      .requirements,
    [],
  );
});

// NVIDIA_VISIBLE_DEVICES → what it selects, as NVIDIA's image and device parsers read it (null: not a GPU container).
const DEVICES: [string | undefined, GpuRequest["devices"] | null][] = [
  [undefined, null],
  ["", null],
  [" , ", null],
  ["void", null],
  ["0,void", null],
  ["void,all", null],
  ["all,void", null],
  ["all", { kind: "all" }],
  ["ALL", { kind: "all" }],
  [" all ", { kind: "all" }],
  ["0,all", { kind: "all" }],
  ["none", { kind: "none" }],
  ["none,0", { kind: "none" }],
  ["0,none", { kind: "none" }],
  ["none,all", { kind: "none" }],
  ["all,none", { kind: "all" }],
  ["NONE", { kind: "list", ids: ["NONE"] }],
  ["VOID", { kind: "list", ids: ["VOID"] }],
  ["0", { kind: "list", ids: ["0"] }],
  [" 0 , 1 ,", { kind: "list", ids: ["0", "1"] }],
  ["GPU-abc,MIG-def", { kind: "list", ids: ["GPU-abc", "MIG-def"] }],
  ["nvidia.com/gpu=0", { kind: "list", ids: ["nvidia.com/gpu=0"] }],
];

Deno.test("readRequest(): NVIDIA_VISIBLE_DEVICES values mean what they mean to NVIDIA", () => {
  for (const [value, want] of DEVICES) {
    const env = value === undefined ? [] : [`NVIDIA_VISIBLE_DEVICES=${value}`];
    assertEquals(readRequest(spec(env), policy)?.devices ?? null, want, JSON.stringify(value));
  }
});

Deno.test("readRequest(): a container that asks for no GPU is never refused for its other variables", () => {
  for (
    const env of [
      ["NVIDIA_REQUIRE_X=garbage"],
      ["NVIDIA_REQUIRE_CUDA=cuda>=twelve", "NVIDIA_DRIVER_CAPABILITIES=bogus"],
      ["NVIDIA_VISIBLE_DEVICES=void", "NVIDIA_MIG_CONFIG_DEVICES=all"],
      ["NVIDIA_VISIBLE_DEVICES=", "NVIDIA_IMEX_CHANNELS=banana", "NVIDIA_GDS=enabled"],
      ["CUDA_VERSION=foo", "NVIDIA_REQUIRE_CUDA=cuda>=11"],
    ]
  ) assertEquals(readRequest(spec(env), policy), null, env.join(" "));
  // The same variables in a GPU container are read, and refused.
  assertThrows(
    () => gpu(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_X=garbage"]),
    GpuctlError,
    "NVIDIA_REQUIRE_X",
  );
  assertThrows(
    () => gpu(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_MIG_CONFIG_DEVICES=all"]),
    GpuctlError,
    "NVIDIA_MIG_CONFIG_DEVICES: is only honoured for privileged containers",
  );
});

Deno.test("readRequest(): every NVIDIA_REQUIRE_JETPACK* is ignored, other NVIDIA_REQUIRE_* are read", () => {
  const r = gpu([
    "NVIDIA_VISIBLE_DEVICES=0",
    "NVIDIA_REQUIRE_JETPACK=csv-mounts=all",
    "NVIDIA_REQUIRE_JETPACK_HOST_MOUNTS=base-only",
    "NVIDIA_REQUIRE_ARCH=arch>=8.0",
  ]);
  assertEquals(r.requirements.map((x) => x.source), ["NVIDIA_REQUIRE_ARCH"]);
});

Deno.test("readRequest(): NVIDIA_DISABLE_REQUIRE takes Go's true values only", () => {
  for (const v of ["1", "t", "T", "TRUE", "true", "True"]) {
    assertEquals(
      gpu(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_CUDA=cuda>=99", `NVIDIA_DISABLE_REQUIRE=${v}`])
        .requirements,
      [],
      v,
    );
  }
  for (const v of ["yes", "on", "tRuE", "", "0", "false", "2"]) {
    assertEquals(
      gpu(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_CUDA=cuda>=99", `NVIDIA_DISABLE_REQUIRE=${v}`])
        .requirements.length,
      1,
      v,
    );
  }
});

Deno.test("readRequest(): a legacy CUDA image gets all devices and capabilities and a cuda requirement", () => {
  const r = gpu(["CUDA_VERSION=11.8.0"]);
  assertEquals([r.devices, r.capabilities], [{ kind: "all" }, "all"]);
  assertEquals(r.requirements.map((x) => x.alternatives[0]![0]!.text), ["cuda>=11.8"]);
  // With NVIDIA_REQUIRE_CUDA set, it is not legacy; an empty one does not count; nor does an empty CUDA_VERSION.
  assertEquals(readRequest(spec(["CUDA_VERSION=11.8.0", "NVIDIA_REQUIRE_CUDA=cuda>=11.0"]), policy), null);
  assertEquals(gpu(["CUDA_VERSION=11.8.0", "NVIDIA_REQUIRE_CUDA="]).devices, { kind: "all" });
  assertEquals(readRequest(spec(["CUDA_VERSION="]), policy), null);
  // Explicit devices and capabilities still win over the legacy defaults.
  const e = gpu(["CUDA_VERSION=12.2", "NVIDIA_VISIBLE_DEVICES=1", "NVIDIA_DRIVER_CAPABILITIES=utility"]);
  assertEquals([e.devices, e.capabilities], [{ kind: "list", ids: ["1"] }, "utility"]);
});

Deno.test("legacyCudaRequirement() reads CUDA_VERSION as NVIDIA's Go semver does, numbers bounded to 32 bits", () => {
  for (
    const [v, want] of [
      ["8", "cuda>=8.0"],
      ["v11.6", "cuda>=11.6"],
      ["11.8.0", "cuda>=11.8"],
      ["12.4.1", "cuda>=12.4"],
      ["10.0.130", "cuda>=10.0"],
      ["11.0.3-rc1", "cuda>=11.0"],
      ["11.0.3-rc.1.x-y", "cuda>=11.0"],
      ["11.0.3+build.01", "cuda>=11.0"],
      ["11.0.3-0", "cuda>=11.0"],
      ["0.0", "cuda>=0.0"],
      ["4294967295.4294967295", "cuda>=4294967295.4294967295"],
    ]
  ) assertEquals(legacyCudaRequirement(v!), want, v);
  for (
    const v of [
      "9.0.bar",
      "foo",
      "-9",
      "9..0",
      "1.2.3.4",
      " 9",
      "9.2+build", // a build only after a patch
      "9-rc1", // and a pre-release too
      "011.0", // no leading zeros
      "11.01",
      "11.0.3-01", // nor in a numeric pre-release
      "11.0.3-",
      "11.0.3+",
      "vv11.0",
      "9.4294967296", // a 32-bit number each
      "4294967296",
      "99999999999999999999.0",
    ]
  ) {
    assertThrows(() => legacyCudaRequirement(v), GpuctlError, "CUDA_VERSION");
  }
  assertThrows(
    () => legacyCudaRequirement("9.4294967296"),
    GpuctlError,
    "minor version larger than 4294967295",
  );
  assertThrows(() => gpu(["CUDA_VERSION=9.0.bar"]), GpuctlError, '"9.0.bar" is not a version');
});

Deno.test("readRequest(): privileged × env × volume mounts", () => {
  const env = ["NVIDIA_VISIBLE_DEVICES=all"];
  const strict: RequestPolicy = { ...policy, acceptEnvWhenUnprivileged: false, acceptVolumeMounts: true };
  assertEquals(gpu(env).devices, { kind: "all" }, "NVIDIA's default: env honoured unprivileged");
  assertEquals(readRequest(spec(env), strict), null, "strict: env ignored unprivileged");
  assertEquals(
    gpu(env, strict, { privileged: true }).devices,
    { kind: "all" },
    "strict: env honoured privileged",
  );
  assertEquals(gpu(env, strict, { mounts: ["1", "GPU-abc"] }).devices, {
    kind: "list",
    ids: ["1", "GPU-abc"],
  }, "volume mounts win");
  assertEquals(
    gpu(env, policy, { mounts: ["1"] }).devices,
    { kind: "all" },
    "volume mounts not accepted by default",
  );
  const r = gpu([], strict, { mounts: ["0"] });
  assertEquals([r.devices, r.devicesSource], [
    { kind: "list", ids: ["0"] },
    `volume mounts under ${VOLUME_ROOT}`,
  ]);
  // Ids with "/" (the old MIG-GPU-<uuid>/<gi>/<ci> form) are kept, never dropped without a word.
  assertEquals(gpu([], strict, { mounts: ["MIG-GPU-abc/1/0"] }).devices, {
    kind: "list",
    ids: ["MIG-GPU-abc/1/0"],
  });
  // CDI requests as mounts, in both spellings; IMEX channels as mounts are not devices.
  assertEquals(
    gpu([], strict, { mounts: ["cdi/nvidia.com/gpu/0", "cdi/nvidia.com/gpu=1", "imex/3"] }).devices,
    {
      kind: "list",
      ids: ["nvidia.com/gpu=0", "nvidia.com/gpu=1"],
    },
  );
  assertEquals(gpu([], strict, { mounts: ["0", "imex/3", "imex/channel4"] }).imexChannels, [3, 4]);
  // A legacy image under the strict policy, unprivileged: no GPU.
  assertEquals(readRequest(spec(["CUDA_VERSION=12.0"]), strict), null);
});

Deno.test("readRequest(): Docker Swarm's resource variables select devices before NVIDIA_VISIBLE_DEVICES", () => {
  const swarm = { ...policy, swarmResource: ["DOCKER_RESOURCE_GPU", "DOCKER_RESOURCE_GPUS"] };
  assertEquals(gpu(["NVIDIA_VISIBLE_DEVICES=all", "DOCKER_RESOURCE_GPU=GPU-a"], swarm).devices, {
    kind: "list",
    ids: ["GPU-a"],
  });
  assertEquals(
    gpu(["DOCKER_RESOURCE_GPUS=GPU-b", "DOCKER_RESOURCE_GPU=GPU-a"], swarm).devices,
    { kind: "list", ids: ["GPU-a", "GPU-b"] },
    "both set: concatenated, in the configured order",
  );
  assertEquals(
    gpu(["NVIDIA_VISIBLE_DEVICES=1"], swarm).devices,
    { kind: "list", ids: ["1"] },
    "none set: the usual variable",
  );
  assertEquals(readRequest(spec(["DOCKER_RESOURCE_GPU=GPU-a"]), policy), null, "not configured: ignored");
});

Deno.test("readRequest(): CDI annotations of device plugins come first", () => {
  const r = gpu(["NVIDIA_VISIBLE_DEVICES=all"], policy, {
    annotations: { "cdi.k8s.io/b": "nvidia.com/gpu=1", "cdi.k8s.io/a": "nvidia.com/gpu=0, ", "other": "x" },
  });
  assertEquals([r.devices, r.devicesSource], [
    { kind: "list", ids: ["nvidia.com/gpu=0", "nvidia.com/gpu=1"] },
    "annotation cdi.k8s.io/a",
  ]);
  assertEquals(gpu(["NVIDIA_VISIBLE_DEVICES=1"], policy, { annotations: { "cdi.k8s.io/x": "" } }).devices, {
    kind: "list",
    ids: ["1"],
  });
});

Deno.test("readRequest(): IMEX channels and gated features, for GPU containers", () => {
  const r = gpu([
    "NVIDIA_VISIBLE_DEVICES=0",
    "NVIDIA_IMEX_CHANNELS=0,channel7",
    "NVIDIA_GDS=enabled",
    "NVIDIA_MOFED=ENABLED",
  ]);
  assertEquals([r.imexChannels, r.gated], [[0, 7], ["gds"]]);
  assertEquals(
    gpu(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_IMEX_CHANNELS=all"]).imexChannels,
    [],
    "all is not honoured from env",
  );
  assertEquals(gpu(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_IMEX_CHANNELS=void"]).imexChannels, []);
  assertThrows(
    () => gpu(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_IMEX_CHANNELS=1048576"]),
    GpuctlError,
    "not an IMEX channel",
  );
  assertThrows(
    () => gpu(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_IMEX_CHANNELS=x1"]),
    GpuctlError,
    "not an IMEX channel",
  );
  const strict = { ...policy, acceptEnvWhenUnprivileged: false };
  assertEquals(
    gpu(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_IMEX_CHANNELS=1"], strict, { privileged: true }).imexChannels,
    [1],
  );
});

Deno.test("readRequest(): MIG config/monitor only for privileged containers, only 'all'", () => {
  assertEquals(
    gpu(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_MIG_MONITOR_DEVICES=all"], policy, { privileged: true })
      .migMonitor,
    true,
  );
  assertThrows(
    () => gpu(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_MIG_CONFIG_DEVICES=0"], policy, { privileged: true }),
    GpuctlError,
    'only "all"',
  );
});

Deno.test("readRequest(): config.json is read as runc reads it: keys in any case, the last one winning", () => {
  const text = (s: string) => parseSpec(s, "config.json");
  // runc sees the bounding set {CAP_KILL}: an unprivileged container, whatever the first key said.
  const strict = { ...policy, acceptEnvWhenUnprivileged: false };
  const caps = text(
    '{"process":{"env":["NVIDIA_VISIBLE_DEVICES=all"],"capabilities":{"bounding":["CAP_SYS_ADMIN"],"Bounding":["CAP_KILL"]}}}',
  );
  assertEquals(caps.bounding, ["CAP_KILL"]);
  assertEquals(readRequest(caps, strict), null);
  // An "Env" after "env" is the environment runc gives the container.
  assertEquals(
    readRequest(text('{"process":{"env":["NVIDIA_VISIBLE_DEVICES=all"],"Env":["A=1"]}}'), policy),
    null,
  );
  assertEquals(readRequest(text('{"PROCESS":{"ENV":["NVIDIA_VISIBLE_DEVICES=0"]}}'), policy)?.devices, {
    kind: "list",
    ids: ["0"],
  });
  // Go's folding: the long s is an s.
  assertEquals(
    readRequest(text('{"proce\u017f\u017f":{"env":["NVIDIA_VISIBLE_DEVICES=0"]}}'), policy)?.devices,
    {
      kind: "list",
      ids: ["0"],
    },
  );
});

Deno.test("brand requirements use NVIDIA's short names, for every NVML brand", () => {
  assertEquals(BRANDS.length, 17);
  for (const b of BRANDS) {
    const facts = { ...host, brand: requirementBrand(b.name) };
    checkRequirements([parseRequirement("NVIDIA_REQUIRE_BRAND", `brand=${b.short}`)], [facts]);
    checkRequirements([parseRequirement("NVIDIA_REQUIRE_BRAND", `brand=${b.short.toUpperCase()}`)], [facts]);
    const other = BRANDS.find((x) => x.short !== b.short)!;
    assertThrows(
      () => checkRequirements([parseRequirement("NVIDIA_REQUIRE_BRAND", `brand=${other.short}`)], [facts]),
      GpuctlError,
      `brand ${b.short}`,
    );
  }
  // The CUDA 12.8 images' requirement on a 535 driver with an RTX professional card: accepted, as by NVIDIA.
  const image = "cuda>=12.8 brand=unknown,driver>=535,driver<536 brand=quadrortx,driver>=535,driver<536 " +
    "brand=nvidiartx,driver>=535,driver<536 brand=vws,driver>=535,driver<536";
  const rtx = { cuda: "12.2", driver: "535.183.01", arch: "8.6", brand: requirementBrand("NVIDIA RTX") };
  checkRequirements([parseRequirement("NVIDIA_REQUIRE_CUDA", image)], [rtx]);
  assertThrows(
    () => checkRequirements([parseRequirement("NVIDIA_REQUIRE_CUDA", image)], [{ ...rtx, brand: "geforce" }]),
    GpuctlError,
  );
});

Deno.test("the hook's unsafe-environment pattern", async () => {
  const { UNSAFE_ENV } = await import("../../cli/hook.ts");
  for (
    const k of [
      "LD_PRELOAD",
      "LD_LIBRARY_PATH",
      "LD_AUDIT",
      "GCONV_PATH",
      "MALLOC_CHECK_",
      "GLIBC_TUNABLES",
      "NODE_OPTIONS",
      "DENO_DIR",
      "DENO_V8_FLAGS",
      "BUN_X",
    ]
  ) {
    assert(UNSAFE_ENV.test(k), k);
  }
  for (
    const k of [
      "PATH",
      "HOME",
      "GPUCTL_CONFIG",
      "DENO_NODE_SHIM_ACTIVE",
      "XLD_PRELOAD",
      "NVIDIA_VISIBLE_DEVICES",
    ]
  ) {
    assert(!UNSAFE_ENV.test(k), k);
  }
});

Deno.test("the shim passes runc the caller's environment, without what Deno adds on a PATH-less start", async () => {
  const { passThroughEnv } = await import("../../cli/runtime.ts");
  assertEquals(
    passThroughEnv({ PATH: "/root/.cache/deno/node_compat_bin", DENO_NODE_SHIM_ACTIVE: "1", HOME: "/root" }),
    ["HOME=/root"],
  );
  assertEquals(passThroughEnv({ PATH: "/usr/bin:/bin", GPUCTL_CONFIG: "/c" }), [
    "PATH=/usr/bin:/bin",
    "GPUCTL_CONFIG=/c",
  ]);
});

Deno.test("readRequest(): CDI kinds from the environment and volumes are gpuctl's own; others only from annotations the operator allows", () => {
  // An unprivileged image's own environment naming another vendor's device (its spec may mount the host's /).
  assertThrows(
    () => readRequest(spec(["NVIDIA_VISIBLE_DEVICES=example.com/disk=x"]), policy),
    GpuctlError,
    'NVIDIA_VISIBLE_DEVICES: names the CDI kind "example.com/disk": the environment and volume mounts may name only the kinds in cdiKinds (nvidia.com/gpu); other kinds come from an orchestrator\'s annotations',
  );
  // Privileged or not, the environment is the image's.
  assertThrows(
    () =>
      readRequest(
        spec(["NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=0,example.com/disk=x"], { privileged: true }),
        policy,
      ),
    GpuctlError,
    "example.com/disk",
  );
  assertThrows(
    () =>
      readRequest(spec([], { mounts: ["cdi/example.com/disk/x"] }), {
        ...policy,
        acceptVolumeMounts: true,
      }),
    GpuctlError,
    'volume mounts under /var/run/nvidia-container-devices: names the CDI kind "example.com/disk"',
  );
  assertEquals(readRequest(spec(["NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=0"]), policy)?.devices, {
    kind: "list",
    ids: ["nvidia.com/gpu=0"],
  });
  // Annotations: gpuctl's kinds, and others only as listed.
  const annotated = spec([], { annotations: { "cdi.k8s.io/disk": "example.com/disk=x" } });
  assertThrows(() => readRequest(annotated, policy), GpuctlError, "add it to cdiAnnotationKinds");
  assertEquals(
    readRequest(annotated, { ...policy, cdiAnnotationKinds: ["example.com/disk"] })?.devices.kind,
    "list",
  );
  assertEquals(readRequest(annotated, { ...policy, cdiAnnotationKinds: ["*"] })?.devices.kind, "list");
});

Deno.test("readRequest(): the volume-mounts strategy's NVIDIA_VISIBLE_DEVICES, with and without the mounts", () => {
  const env = [`NVIDIA_VISIBLE_DEVICES=${VOLUME_ROOT}`];
  const accept: RequestPolicy = { ...policy, acceptVolumeMounts: true };
  assertEquals(gpu(env, accept, { mounts: ["GPU-abc"] }).devices, { kind: "list", ids: ["GPU-abc"] });
  assertEquals(
    assertThrows(() => readRequest(spec(env, { mounts: ["GPU-abc"] }), policy), GpuctlError).message,
    `NVIDIA_VISIBLE_DEVICES: "${VOLUME_ROOT}" asks for the GPUs mounted under it (a device plugin's volume-mounts strategy), which this host does not accept: set "acceptVolumeMounts": true in gpuctl's configuration`,
  );
  assertThrows(() => readRequest(spec([`${env[0]}/`]), accept), GpuctlError, "but none is mounted there");
});

Deno.test("parseSpec(): annotations as runc reads them, collected while parsing and not kept in the tree", () => {
  const text = `{"annotations": {"a": "1", "b": "2"}, "process": {"env": []},
    "Annotations": {"x": "1", "x": "2", "n": null}}`;
  const s = parseSpec(text, "config.json");
  // The last key matching "annotations" (case-insensitively) wins, as Go's decoder does; in it, the last "x".
  assertEquals([...s.annotations], [["x", "2"], ["n", ""]]);
  const node = s.tree.t === "obj" ? s.tree.members.find(([k]) => k === "Annotations")![1] : null;
  assertEquals(node?.t === "obj" ? node.members : null, []);
  // A value that is not a string is refused, naming its key.
  assertThrows(
    () => parseSpec('{"annotations": {"ok": "1", "bad": {"x": 1}}}', "config.json"),
    GpuctlError,
    'annotation "bad" is not a string',
  );
});
