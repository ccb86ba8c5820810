/**
 * The CDI specs' check: NVIDIA's specs, read by CDI's own rules (`cdi/resolve.ts`), define no name twice, name
 * hooks and host files that exist, and were generated for the loaded driver.
 * @module
 */
import type { Config } from "../config/schema.ts";
import type { CdiSpec } from "../cdi/spec.ts";
import { CDI_OUTPUT } from "../cdi/spec.ts";
import { cdiRegistry, conflictText, type LoadedSpec, loadSpecs, prepareYaml } from "../cdi/resolve.ts";
import { type Check, fail, isExecutable, ok, warn } from "./check.ts";

/** The CDI fix every command, unit and README line gives: where `install --cdi` and the unit write it. */
export const CDI_FIX = `gpuctl cdi generate --output ${CDI_OUTPUT}`;

const editsOf = (spec: CdiSpec) => [spec.containerEdits, ...spec.devices.map((d) => d.containerEdits)];

/** Whether a spec is NVIDIA's: its vendor, or a hook that is gpuctl or NVIDIA's. */
export function isNvidiaSpec(spec: CdiSpec): boolean {
  if (spec.kind.startsWith("nvidia.com/")) return true;
  return editsOf(spec).some((e) => (e?.hooks ?? []).some((h) => /gpuctl|nvidia/i.test(h.path)));
}

/** Every spec in `dirs` by CDI's own rules, and the files that could not be read as specs. */
async function allSpecs(dirs: readonly string[]): Promise<{ specs: LoadedSpec[]; errors: string[] }> {
  await prepareYaml(dirs);
  const errors: string[] = [];
  return { specs: loadSpecs(dirs, errors), errors };
}

/** NVIDIA's specs in `dirs`. */
export async function nvidiaSpecs(dirs: readonly string[]): Promise<LoadedSpec[]> {
  return (await allSpecs(dirs)).specs.filter((s) => isNvidiaSpec(s.spec));
}

/** The driver version gpuctl's container-edits hook was generated for, when the spec has one. */
function driverVersionOf(spec: CdiSpec): string | undefined {
  for (const e of editsOf(spec)) {
    for (const h of e?.hooks ?? []) {
      const args = h.args ?? [];
      const k = args.indexOf("--driver-version");
      if (k >= 0 && args[k + 1] !== undefined) return args[k + 1];
      const eq = args.find((a) => a.startsWith("--driver-version="));
      if (eq !== undefined) return eq.slice("--driver-version=".length);
    }
  }
  return undefined;
}

/** The first host file a spec names that is gone. */
function goneHostFile(spec: CdiSpec): string | undefined {
  const paths = editsOf(spec).flatMap((e) => [
    ...(e?.deviceNodes ?? []).flatMap((n) => n.hostPath ? [n.hostPath] : []),
    ...(e?.mounts ?? []).map((m) => m.hostPath),
  ]);
  return paths.find((p) => {
    try {
      Deno.lstatSync(p);
      return false;
    } catch { // gone
      return true;
    }
  });
}

/**
 * `cdi.specs`. Two specs defining one name, or a hook that is gone, fail every container given one of their
 * devices; a spec for another driver gives the old files.
 */
export async function cdiCheck(c: Config, driver: string | null): Promise<Check> {
  const { specs: all, errors } = await allSpecs(c.cdiSpecDirs);
  const conflicts = [...cdiRegistry(all).conflicts];
  if (conflicts.length > 0) {
    const [name, files] = conflicts[0]!;
    const more = conflicts.length > 1 ? `${conflicts.length} CDI names are defined twice; the first: ` : "";
    return fail("cdi.specs", `${more}${conflictText(name, files)}`, `rm ${files.slice(1).join(" ")}`);
  }
  const hookGone = all.flatMap((s) =>
    [...new Set(editsOf(s.spec).flatMap((e) => (e?.hooks ?? []).map((h) => h.path)))]
      .filter((p) => !isExecutable(p)).map((p) => `${s.file} names the hook ${p}, which is gone`)
  );
  if (hookGone.length > 0) {
    return fail(
      "cdi.specs",
      `${hookGone.join("; ")}: every container given one of its devices fails`,
      `gpuctl install --cdi --cdi-output ${hookGone[0]!.split(" ")[0]}`,
    );
  }
  const ours = all.filter((s) => isNvidiaSpec(s.spec));
  const stale = ours.flatMap((s) => {
    const v = driverVersionOf(s.spec);
    if (driver !== null && v !== undefined && v !== driver) return [`${s.file} is for driver ${v}`];
    const gone = goneHostFile(s.spec);
    return gone === undefined ? [] : [`${s.file} names ${gone}, which is gone`];
  });
  if (stale.length > 0) {
    return fail(
      "cdi.specs",
      `${stale.join("; ")}${
        driver ? ` (the driver is ${driver})` : ""
      }: CDI devices would fail or get the old files`,
      `gpuctl cdi generate --output ${stale[0]!.split(" ")[0]}`,
    );
  }
  if (errors.length > 0) {
    return warn(
      "cdi.specs",
      `${errors.join("; ")} (engines skip such a file: the devices it defines cannot be resolved)`,
      "fix or remove the file",
    );
  }
  const dirs = c.cdiSpecDirs.join(", ");
  return ok(
    "cdi.specs",
    ours.length === 0 ? `no NVIDIA CDI spec in ${dirs}` : `${ours.length} spec(s) current`,
  );
}
