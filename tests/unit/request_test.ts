import { assert, assertEquals, assertThrows } from "../assert.ts";
import { readRequest, type RequestPolicy, VOLUME_ROOT } from "../../request/request.ts";
import {
  checkRequirements,
  compareVersions,
  type HostFacts,
  parseRequirement,
} from "../../request/requirements.ts";
import type { OciSpec } from "../../oci/spec.ts";
import { GpuctlError } from "../../errors/mod.ts";

const policy: RequestPolicy = {
  acceptEnvWhenUnprivileged: true,
  acceptVolumeMounts: false,
  disableRequire: false,
};
const spec = (env: string[], o: { privileged?: boolean; mounts?: string[] } = {}): OciSpec => ({
  process: { env, capabilities: { bounding: o.privileged ? ["CAP_CHOWN", "CAP_SYS_ADMIN"] : ["CAP_CHOWN"] } },
  mounts: (o.mounts ?? []).map((d) => ({
    destination: `${VOLUME_ROOT}/${d}`,
    source: "/dev/null",
    type: "bind",
  })),
});
const host: HostFacts = { cuda: "12.4", driver: "550.54.15", arch: "9.0", brand: "Tesla" };

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
    'NVIDIA_REQUIRE_DRIVER: unsatisfied requirement "driver>=560": this host has cuda 12.4, driver 550.54.15, arch 9.0, brand Tesla (upgrade the driver, or set NVIDIA_DISABLE_REQUIRE=true)',
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
  const r = readRequest(
    spec([
      "NVIDIA_VISIBLE_DEVICES=0,1",
      "NVIDIA_DRIVER_CAPABILITIES=compute",
      "NVIDIA_REQUIRE_CUDA=cuda>=12",
    ]),
    policy,
  );
  assertEquals([r.devices, r.capabilities, r.requirements.map((x) => x.source), r.privileged], [
    "0,1",
    "compute",
    ["NVIDIA_REQUIRE_CUDA"],
    false,
  ]);
  assertEquals(readRequest(spec(["PATH=/bin"]), policy).devices, undefined);
  assertEquals(
    readRequest(spec(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_VISIBLE_DEVICES=2"]), policy).devices,
    "2",
    "a later duplicate wins",
  );
  assertEquals(
    readRequest(spec(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_JETPACK=x"]), policy).requirements,
    [],
  );
  assertEquals(
    readRequest(
      spec(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_CUDA=cuda>=99", "NVIDIA_DISABLE_REQUIRE=true"]),
      policy,
    ).requirements,
    [],
  );
  assertEquals(
    readRequest(spec(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_REQUIRE_CUDA=cuda>=99"]), {
      ...policy,
      disableRequire: true,
    }).requirements,
    [],
  );
});

Deno.test("readRequest(): a legacy CUDA image gets all devices and capabilities and a cuda requirement", () => {
  const r = readRequest(spec(["CUDA_VERSION=11.8.0"]), policy);
  assertEquals([r.devices, r.capabilities], ["all", "all"]);
  assertEquals(r.requirements.map((x) => x.alternatives[0]![0]!.text), ["cuda>=11.8"]);
  // With NVIDIA_REQUIRE_CUDA set, it is not legacy.
  assertEquals(
    readRequest(spec(["CUDA_VERSION=11.8.0", "NVIDIA_REQUIRE_CUDA=cuda>=11.0"]), policy).devices,
    undefined,
  );
});

Deno.test("readRequest(): privileged × env × volume mounts", () => {
  const env = ["NVIDIA_VISIBLE_DEVICES=all"];
  const strict: RequestPolicy = { ...policy, acceptEnvWhenUnprivileged: false, acceptVolumeMounts: true };
  assertEquals(readRequest(spec(env), policy).devices, "all", "NVIDIA's default: env honoured unprivileged");
  assertEquals(readRequest(spec(env), strict).devices, undefined, "strict: env ignored unprivileged");
  assertEquals(
    readRequest(spec(env, { privileged: true }), strict).devices,
    "all",
    "strict: env honoured privileged",
  );
  assertEquals(
    readRequest(spec(env, { mounts: ["1", "GPU-abc"] }), strict).devices,
    "1,GPU-abc",
    "volume mounts win",
  );
  assertEquals(
    readRequest(spec(env, { mounts: ["1"] }), policy).devices,
    "all",
    "volume mounts not accepted by default",
  );
  const r = readRequest(spec([], { mounts: ["0"] }), strict);
  assertEquals([r.devices, r.devicesSource], ["0", `volume mounts under ${VOLUME_ROOT}`]);
});

Deno.test("readRequest(): MIG config/monitor only for privileged containers, only 'all'", () => {
  const e = assertThrows(
    () => readRequest(spec(["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_MIG_CONFIG_DEVICES=all"]), policy),
    GpuctlError,
  );
  assertEquals(
    e.message,
    "NVIDIA_MIG_CONFIG_DEVICES: is only honoured for privileged containers (with CAP_SYS_ADMIN)",
  );
  assertEquals(
    readRequest(spec(["NVIDIA_MIG_MONITOR_DEVICES=all"], { privileged: true }), policy).migMonitor,
    true,
  );
  assertThrows(
    () => readRequest(spec(["NVIDIA_MIG_CONFIG_DEVICES=0"], { privileged: true }), policy),
    GpuctlError,
    'only "all"',
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
