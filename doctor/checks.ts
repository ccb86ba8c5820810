/**
 * `gpuctl doctor`: the chain from the kernel driver to the container engines, walked in order, each link one check
 * with what it saw and, when it is not right, the command that fixes it. Later links that depend on a broken one are
 * skipped rather than failed, so a broken host shows its cause once, not its symptoms many times.
 *
 * Everything it reads is under the configuration's roots (`driverRoot`, `devRoot`, `procRoot`, `sysRoot`,
 * `cdiSpecDirs`, `pluginsDir`) or a path given on the command line, so tests point it at broken fixtures. The
 * checks live by subject: `driver.ts`, `devices.ts`, `host.ts`, `gpuctl.ts`, `cdi.ts`, `engines.ts`.
 * @module
 */
import { type Check, count, type DoctorInputs, fail, ok, skip } from "./check.ts";
import { kernelCheck, librariesCheck, nvmlCheck, userSpaceVersion } from "./driver.ts";
import { deviceChecks } from "./devices.ts";
import { cgroupsCheck } from "./host.ts";
import { configCheck, linksCheck, pluginsCheck, serveCheck } from "./gpuctl.ts";
import { cdiCheck } from "./cdi.ts";
import { engineChecks } from "./engines.ts";

export { type Check, type DoctorInputs, type Engine, ENGINES, type Status } from "./check.ts";
export { userSpaceVersion } from "./driver.ts";
export { runcFixed, runtimeCheck } from "./host.ts";
export { serveCheck } from "./gpuctl.ts";
export { CDI_FIX } from "./cdi.ts";
export { PODMAN_CDI_DIRS } from "./engines.ts";

/** Runs every check in order. */
export async function runChecks(i: DoctorInputs): Promise<Check[]> {
  const c = i.config;
  const out: Check[] = [];
  const { check, kernel } = kernelCheck(c);
  out.push(check);
  const user = userSpaceVersion(c);
  out.push(librariesCheck(c, { kernel, user }));
  const nvml = await nvmlCheck(i, { kernel, user });
  out.push(nvml.check);
  out.push(...deviceChecks(c, kernel));
  out.push(cgroupsCheck(c));
  out.push(await i.runtime());
  out.push(configCheck(i));
  out.push(await pluginsCheck(i));
  const links = linksCheck(i);
  out.push(links.check);
  out.push(serveCheck(c, links.fronts));
  // CDI specs are only worth checking against a working driver: a broken one makes every spec look stale, and
  // regenerating it then would be the wrong fix.
  const driverBroken = out.some((x) => x.status === "fail" && /^(driver|nvml|devices)/.test(x.id));
  out.push(
    driverBroken
      ? skip("cdi.specs", "not checked: the driver is not working (above)")
      : await cdiCheck(c, kernel ?? user?.version ?? null),
  );
  out.push(...await engineChecks(i));
  out.push(nvml.answered ? await planCheck(i) : skip("plan", "not tried: NVML does not answer"));
  return out;
}

/** `plan`: the whole plan, as a container asking for every GPU would get it, and how long it took. */
async function planCheck(i: DoctorInputs): Promise<Check> {
  const t0 = performance.now();
  const p = await i.plan();
  const ms = Math.round(performance.now() - t0);
  if ("error" in p) {
    return fail("plan", `NVIDIA_VISIBLE_DEVICES=all: ${p.error}`, "gpuctl list --json shows the whole plan");
  }
  const migs = p.migs > 0 ? ` and ${count(p.migs, "MIG device")}` : "";
  return ok(
    "plan",
    `NVIDIA_VISIBLE_DEVICES=all: ${
      count(p.gpus, "GPU")
    }${migs}, ${p.nodes} device nodes, ${p.files} files, ${ms} ms`,
  );
}

/** The host's status: any failure, else any warning, else ok. */
export function doctorStatus(checks: readonly Check[]): "ok" | "warn" | "fail" {
  return checks.some((c) => c.status === "fail")
    ? "fail"
    : checks.some((c) => c.status === "warn")
    ? "warn"
    : "ok";
}

/** One line per check (its fix under it), then the count. */
export function doctorText(checks: readonly Check[]): string {
  const w = Math.max(...checks.map((c) => c.id.length));
  const lines = checks.map((c) =>
    `${c.status.padEnd(4)}  ${c.id.padEnd(w)}  ${c.saw}${c.fix ? `\n${"".padEnd(w + 6)}  fix: ${c.fix}` : ""}`
  );
  const fails = checks.filter((c) => c.status === "fail").length;
  const warns = checks.filter((c) => c.status === "warn").length;
  lines.push(
    fails + warns === 0
      ? "doctor: all is well"
      : `doctor: ${fails} failure${fails === 1 ? "" : "s"}, ${warns} warning${warns === 1 ? "" : "s"}`,
  );
  return lines.join("\n") + "\n";
}
