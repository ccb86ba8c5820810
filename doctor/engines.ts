/**
 * The engines' checks: each one's configuration, read by `engines/`' readers, names a gpuctl runtime that exists
 * (containerd: with runc's SystemdCgroup); Podman finds an NVIDIA CDI spec where it reads them.
 * @module
 */
import type { Config } from "../config/schema.ts";
import {
  containerdRuntimes,
  crioRuntimes,
  dockerRuntimes,
  nameFlag,
  type Registered,
} from "../engines/registered.ts";
import { type Check, type DoctorInputs, fail, isExecutable, ok, warn } from "./check.ts";
import { CDI_FIX, nvidiaSpecs } from "./cdi.ts";

/** Where Podman 4 reads CDI specs (it has no setting for them). */
export const PODMAN_CDI_DIRS = ["/etc/cdi", "/var/run/cdi"] as const;

/** A runtime that is gpuctl (or NVIDIA's, which gpuctl replaces). */
const isOurs = (r: Registered) => /gpuctl|nvidia-container-runtime/.test(r.path);

/** The engine checks asked for, in a fixed order. */
export async function engineChecks(i: DoctorInputs): Promise<Check[]> {
  const out: Check[] = [];
  if (i.engines.has("docker")) out.push(dockerCheck(i.dockerConfig));
  if (i.engines.has("containerd")) out.push(containerdCheck(i.containerdConfig));
  if (i.engines.has("crio")) out.push(crioCheck(i.crioDropIn));
  if (i.engines.has("podman")) out.push(await podmanCheck(i.config, i.podmanCdiDirs));
  return out;
}

function dockerCheck(file: string): Check {
  let d: ReturnType<typeof dockerRuntimes>;
  try {
    d = dockerRuntimes(file);
  } catch (e) {
    return fail("engine.docker", `${(e as Error).message} (dockerd will not start)`, "fix the file it names");
  }
  if (d === null) {
    return warn(
      "engine.docker",
      `${file} is absent: no gpuctl runtime registered (docker run --runtime nvidia: unknown or invalid runtime name)`,
      "gpuctl configure docker && systemctl reload docker",
    );
  }
  const ours = d.runtimes.filter(isOurs);
  const broken = ours.filter((r) => !isExecutable(r.path));
  const def = d.defaultRuntime;
  if (def !== undefined && def !== "runc" && !d.runtimes.some((r) => r.name === def)) {
    return fail(
      "engine.docker",
      `default-runtime "${def}" is not among runtimes: dockerd refuses to start`,
      `gpuctl configure docker --name ${def}`,
    );
  }
  if (broken.length > 0) {
    return fail(
      "engine.docker",
      broken.map((r) => `runtime "${r.name}" → ${r.path}, which does not exist`).join("; ") +
        " (docker run: OCI runtime create failed: no such file or directory)",
      `gpuctl install && gpuctl configure docker${nameFlag(broken[0]!.name)}`,
    );
  }
  if (ours.length === 0) {
    return warn("engine.docker", `${file} registers no gpuctl runtime`, "gpuctl configure docker");
  }
  return ok("engine.docker", ours.map((r) => `runtime "${r.name}" → ${r.path}`).join("; "));
}

function containerdCheck(file: string): Check {
  let runtimes: Registered[] | null;
  try {
    runtimes = containerdRuntimes(file, true);
  } catch (e) {
    return fail("engine.containerd", (e as Error).message, "fix the file: containerd will not start with it");
  }
  const restart = "systemctl restart containerd";
  if (runtimes === null) {
    return warn(
      "engine.containerd",
      `${file} is absent: no gpuctl runtime for Kubernetes`,
      `gpuctl configure containerd && ${restart}`,
    );
  }
  const r = runtimes.find(isOurs);
  if (r === undefined) {
    return warn(
      "engine.containerd",
      `${file} registers no gpuctl runtime`,
      `gpuctl configure containerd && ${restart}`,
    );
  }
  if (!isExecutable(r.path)) {
    return fail(
      "engine.containerd",
      `runtime "${r.name}" → ${r.path}, which does not exist`,
      "gpuctl install && gpuctl configure containerd",
    );
  }
  const runc = runtimes.find((x) => x.name === "runc");
  if (runc?.systemdCgroup && !r.systemdCgroup) {
    return fail(
      "engine.containerd",
      `runtime "${r.name}" lacks SystemdCgroup = true, which runc has: its pods would use cgroupfs while the kubelet uses systemd`,
      `gpuctl configure containerd${nameFlag(r.name)} && ${restart}`,
    );
  }
  return ok(
    "engine.containerd",
    `runtime "${r.name}" → ${r.path}${r.systemdCgroup ? ", SystemdCgroup" : ""}`,
  );
}

function crioCheck(file: string): Check {
  let runtimes: Registered[] | null;
  try {
    runtimes = crioRuntimes(file);
  } catch (e) {
    return fail("engine.crio", (e as Error).message, "fix the file: CRI-O will not start with it");
  }
  if (runtimes === null) {
    return warn(
      "engine.crio",
      `${file} is absent: no gpuctl runtime for CRI-O`,
      "gpuctl configure crio && systemctl restart crio",
    );
  }
  const path = runtimes[0]?.path;
  if (path === undefined || !isExecutable(path)) {
    return fail(
      "engine.crio",
      `${file}: runtime_path ${path ?? "(none)"} does not exist`,
      "gpuctl install && gpuctl configure crio",
    );
  }
  return ok("engine.crio", `${file}: runtime_path ${path}`);
}

async function podmanCheck(c: Config, podmanDirs: readonly string[]): Promise<Check> {
  if ((await nvidiaSpecs(podmanDirs)).length > 0) {
    return ok("engine.podman", "reads the CDI specs: podman run --device nvidia.com/gpu=all");
  }
  // A spec where gpuctl reads it, but Podman does not.
  const others = c.cdiSpecDirs.filter((d) => !podmanDirs.includes(d));
  const elsewhere = [
    ...new Set((await nvidiaSpecs(others)).map((s) => s.file.slice(0, s.file.lastIndexOf("/")))),
  ];
  const fails = "podman run --device nvidia.com/gpu=… fails (unresolvable CDI devices)";
  return warn(
    "engine.podman",
    elsewhere.length > 0
      ? `the NVIDIA CDI spec is in ${elsewhere.join(", ")}, which Podman does not read (it reads ${
        podmanDirs.join(", ")
      }): ${fails}`
      : `no NVIDIA CDI spec in ${podmanDirs.join(", ")}: ${fails}`,
    CDI_FIX,
  );
}
