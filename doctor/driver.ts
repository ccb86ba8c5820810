/**
 * The driver's checks: the kernel module, the user-space libraries' version against it, and NVML.
 * @module
 */
import type { Config } from "../config/schema.ts";
import { parseVersionFile } from "../devices/proc.ts";
import { readLdCache } from "../driver/ldcache.ts";
import { LIBRARY_DIRS_64 } from "../driver/locate.ts";
import { hostPath, statInRoot } from "../driver/rootfs.ts";
import { type Check, type DoctorInputs, fail, ok, read, type Seen, skip, warn } from "./check.ts";

const RELOAD =
  "reboot, or reload the driver: rmmod nvidia_uvm nvidia_drm nvidia_modeset nvidia && modprobe nvidia";

/**
 * The version in the real name of the NVML library gpuctl loads (`libnvidia-ml.so.580.95.05`): `nvmlLibrary` as
 * given when it is a path, else that name looked up in the driver root as its loader would (its linker cache,
 * then the usual directories), every link resolved inside the driver root (Debian's `/etc/alternatives` links
 * are absolute: read from the host, they would name the host's files).
 */
export function userSpaceVersion(config: Config): { version: string; file: string } | null {
  const version = (real: string) => /\.so\.(\d+\.\d+(?:\.\d+)?)$/.exec(real)?.[1];
  const lib = config.nvmlLibrary;
  if (lib.includes("/")) {
    try {
      const v = version(Deno.realPathSync(lib));
      return v === undefined ? null : { version: v, file: lib };
    } catch {
      return null; // not there: the nvml check says so
    }
  }
  const root = config.driverRoot.replace(/\/+$/, "") || "/";
  const candidates: string[] = [];
  try {
    for (const e of readLdCache(hostPath(root, "/etc/ld.so.cache"))) {
      if (e.soname === lib && e.is64) candidates.push(e.path);
    }
  } catch { /* no cache: the usual directories */ }
  for (const d of [...config.libraryDirs, ...LIBRARY_DIRS_64]) candidates.push(`${d}/${lib}`);
  for (const c of candidates) {
    const s = statInRoot(root, c);
    const v = s !== null && s.info.isFile ? version(s.path) : undefined;
    if (v !== undefined) return { version: v, file: c };
  }
  return null;
}

/** `driver.kernel`: the module's version from procfs. */
export function kernelCheck(c: Config): { check: Check; kernel: string | null } {
  const kernel = parseVersionFile(read(`${c.procRoot}/driver/nvidia/version`) ?? "");
  const check = kernel === null
    ? fail(
      "driver.kernel",
      `no NVIDIA kernel driver loaded (${c.procRoot}/driver/nvidia/version is absent)`,
      "modprobe nvidia (install the NVIDIA driver first if the module is absent; check dmesg)",
    )
    : ok("driver.kernel", `kernel module ${kernel} loaded`);
  return { check, kernel };
}

/** `driver.libraries`: the user-space libraries are the module's version (no upgrade without a reload). */
export function librariesCheck(c: Config, seen: Pick<Seen, "kernel" | "user">): Check {
  const { kernel, user } = seen;
  if (user === null) {
    return skip("driver.libraries", `no ${c.nvmlLibrary} under driverRoot ${c.driverRoot} (see nvml)`);
  }
  if (kernel !== null && kernel !== user.version) {
    return fail(
      "driver.libraries",
      `kernel module ${kernel}, user-space libraries ${user.version}: the driver was upgraded and the old module is still loaded (NVML: Driver/library version mismatch)`,
      RELOAD,
    );
  }
  return ok("driver.libraries", `user-space libraries ${user.version} (${user.file})`);
}

/** `nvml`: NVML loads (in a child process) and sees GPUs. Returns whether it answered at all. */
export async function nvmlCheck(
  i: DoctorInputs,
  seen: Pick<Seen, "kernel" | "user">,
): Promise<{ check: Check; answered: boolean }> {
  const c = i.config;
  const { kernel, user } = seen;
  if (user === null) {
    const saw = c.nvmlLibrary.includes("/")
      ? `${c.nvmlLibrary} (nvmlLibrary) is not there, or not a versioned library`
      : `${c.nvmlLibrary} not found under driverRoot ${c.driverRoot}`;
    const fix =
      'install the driver\'s user-space libraries, or set "driverRoot" (a containerized driver: /run/nvidia/driver) or "nvmlLibrary"';
    return { check: fail("nvml", saw, fix), answered: false };
  }
  if (kernel !== null && kernel !== user.version) {
    return {
      check: skip("nvml", "not tried: the driver's versions do not match (driver.libraries)"),
      answered: false,
    };
  }
  const n = await i.nvml();
  if ("error" in n && kernel !== null && n.error.includes("Driver Not Loaded")) {
    // The module is there (procfs says so) but NVML cannot reach it: its control node.
    const check = fail(
      "nvml",
      `${n.error}, yet ${c.procRoot}/driver/nvidia shows ${kernel} loaded: NVML cannot open /dev/nvidiactl (gpuctl reads ${c.procRoot}/driver/nvidia instead, without MIG or CUDA facts)`,
      "gpuctl system create-device-nodes --control-devices (or check who may open /dev/nvidiactl)",
    );
    return { check, answered: false };
  }
  if ("error" in n) {
    return {
      check: fail("nvml", n.error, "see the message; nvidia-smi shows the same failure"),
      answered: false,
    };
  }
  if (n.gpus === 0) {
    // It answered: the plan is still worth trying (it says what a container would get).
    const check = warn(
      "nvml",
      `NVML ${n.version} sees no GPU`,
      "check lspci and dmesg: the GPUs may be off the bus",
    );
    return { check, answered: true };
  }
  return {
    check: ok("nvml", `NVML ${n.version} sees ${n.gpus} GPU${n.gpus === 1 ? "" : "s"}`),
    answered: true,
  };
}
