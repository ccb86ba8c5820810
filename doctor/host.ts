/**
 * The host around the driver: cgroups, and the low-level runtime the shim execs.
 * @module
 */
import type { Config } from "../config/schema.ts";
import { type Check, fail, ok, read, warn } from "./check.ts";

/** `cgroups`: informational (the cgroup version and init decide how device access is granted). */
export function cgroupsCheck(c: Config): Check {
  const v2 = read(`${c.sysRoot}/fs/cgroup/cgroup.controllers`) !== null;
  const systemd = (read(`${c.procRoot}/1/comm`) ?? "").trim() === "systemd";
  const noCgroups = c.noCgroups ? "; noCgroups: gpuctl makes no device-cgroup edits" : "";
  return ok(
    "cgroups",
    `cgroup ${v2 ? "v2" : "v1"}, ${systemd ? "systemd" : "no systemd"} as init${noCgroups}`,
  );
}

/** Whether runc `version` (`1.1.5`, `1.2.0-rc.1`) has the fix for CVE-2024-45310 (1.1.14, or 1.2 and later). */
export function runcFixed(version: string): boolean {
  const [a = 0, b = 0, c = 0] = version.split(/[.-]/).slice(0, 3).map((x) => parseInt(x, 10) || 0);
  return a > 1 || (a === 1 && (b > 1 || (b === 1 && c >= 14)));
}

/**
 * `runtime`: the runtime the shim execs, and its version (from `<runtime> --version`). runc older than 1.1.14
 * can be raced into creating files on the host (CVE-2024-45310); gpuctl's hook path does not depend on it, spec
 * mode does.
 */
export async function runtimeCheck(c: Config, find: () => string | null): Promise<Check> {
  const rt = find();
  if (rt === null) {
    return fail(
      "runtime",
      `none of ${c.runtimes.join(", ")} found`,
      'install runc (>= 1.1.14), or set "runtimes"',
    );
  }
  let text = "";
  try {
    const o = await new Deno.Command(rt, { args: ["--version"], stdout: "piped", stderr: "null" }).output();
    text = new TextDecoder().decode(o.stdout);
  } catch { /* no version: said below */ }
  const m = /^(runc|crun) version (\S+)/m.exec(text);
  if (m === null) {
    return warn(
      "runtime",
      `${rt}: its version is not known (${text.split("\n")[0] || "no output"})`,
      "check it is runc or crun",
    );
  }
  const [, name, version] = m as unknown as [string, string, string];
  if (name === "runc" && !runcFixed(version) && c.mode === "hook") {
    // The race is in creating mount targets from the spec; in hook mode gpuctl makes them itself, by descriptor.
    return ok(
      "runtime",
      `${rt}: runc ${version} (before 1.1.14: CVE-2024-45310 concerns spec mode; this host's shim runs in hook mode)`,
    );
  }
  if (name === "runc" && !runcFixed(version)) {
    return warn(
      "runtime",
      `${rt} is runc ${version}, which can be raced into creating a mount target on the host (CVE-2024-45310) in spec mode`,
      'upgrade runc to 1.1.14 or later, or set "mode": "hook" (the hook holds its mount targets open)',
    );
  }
  return ok("runtime", `${rt}: ${name} ${version}`);
}
