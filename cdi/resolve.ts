/**
 * CDI device names resolved against the specs on this host, for engines that do not read CDI themselves (Docker
 * before 25, containerd 1.6): `NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=0` or a Kubernetes device plugin's
 * `cdi.k8s.io/*` annotation. Specs are read from `cdiSpecDirs` (`*.json`, `*.yaml`); a spec in a later directory
 * wins over one of the same kind in an earlier one, and two specs in one directory that define the same device
 * conflict, as in CDI's own registry.
 * @module
 */
import { describe, GpuctlError, quote } from "../errors/mod.ts";
import type { CdiEdits, CdiSpec } from "./spec.ts";
import { nesting, validateSpec } from "./spec.ts";

const MAX_SPEC = 4 << 20;
/** Deeper than any CDI spec needs (they nest a handful of levels). */
const MAX_NESTING = 64;

/** A spec file read from a directory. */
export interface LoadedSpec {
  file: string;
  spec: CdiSpec;
  /** The directory's position in `cdiSpecDirs` (higher wins). */
  priority: number;
}

/**
 * The spec files in `dirs`, parsed and checked. A file that fails is left out and its error kept in `errors`
 * (as CDI's own registry does): another vendor's broken spec does not stand in the way of gpuctl's.
 */
export function loadSpecs(dirs: readonly string[], errors: string[] = []): LoadedSpec[] {
  const out: LoadedSpec[] = [];
  dirs.forEach((dir, priority) => {
    let names: string[];
    try {
      names = [...Deno.readDirSync(dir)].filter((e) => e.isFile && /\.(json|ya?ml)$/.test(e.name)).map((e) =>
        e.name
      )
        .sort();
    } catch { // no such directory: no specs from it
      return;
    }
    for (const n of names) {
      const file = `${dir}/${n}`;
      try {
        const info = Deno.statSync(file);
        if (info.size > MAX_SPEC) throw new GpuctlError(file, `is larger than ${MAX_SPEC} bytes`);
        const text = Deno.readTextFileSync(file);
        if (nesting(text) > MAX_NESTING) {
          throw new GpuctlError(file, `nests deeper than ${MAX_NESTING} levels: not a CDI spec; ignored`);
        }
        let spec: CdiSpec;
        try {
          spec = n.endsWith(".json") ? JSON.parse(text) : parseYaml(text);
        } catch (e) {
          throw new GpuctlError(
            file,
            `is not valid ${n.endsWith(".json") ? "JSON" : "YAML"} (${describe(e)})`,
            1,
            { cause: e },
          );
        }
        validateSpec(spec, file);
        out.push({ file, spec, priority });
      } catch (e) {
        // One line naming the file, whatever went wrong in reading it.
        errors.push(
          e instanceof GpuctlError ? e.message : `${file}: cannot be read as a CDI spec (${describe(e)})`,
        );
      }
    }
  });
  return out;
}

let yamlParse: ((text: string) => unknown) | null = null;
/** YAML through the `yaml` package, loaded only when a YAML spec is read (`cdi list` and resolution preload it). */
function parseYaml(text: string): CdiSpec {
  if (yamlParse === null) throw new Error("YAML support was not loaded");
  return yamlParse(text) as CdiSpec;
}

/** Loads the YAML parser when any of `dirs` holds a YAML spec. */
export async function prepareYaml(dirs: readonly string[]): Promise<void> {
  if (yamlParse !== null) return;
  const any = dirs.some((d) => {
    try {
      return [...Deno.readDirSync(d)].some((e) => /\.ya?ml$/.test(e.name));
    } catch { // no such directory: nothing to load YAML for
      return false;
    }
  });
  if (any) yamlParse = (await import("./yaml.ts")).parse;
}

/** The devices the specs define, as CDI's own cache reads them. */
export interface CdiRegistry {
  /** Each resolvable name (`nvidia.com/gpu=0`), in spec order, with the spec that wins it. */
  devices: Map<string, { s: LoadedSpec; edits: CdiEdits }>;
  /**
   * Names that two specs in one directory both define, with those specs' files. CDI's cache drops such a name
   * whatever a later directory says (Podman: "unresolvable CDI devices"), and so does gpuctl.
   */
  conflicts: Map<string, string[]>;
}

/** The registry of `specs`: a later directory wins a name; two specs in one directory make it unresolvable. */
export function cdiRegistry(specs: readonly LoadedSpec[]): CdiRegistry {
  const devices: CdiRegistry["devices"] = new Map();
  const conflicts: CdiRegistry["conflicts"] = new Map();
  for (const s of specs) {
    for (const d of s.spec.devices) {
      const name = `${s.spec.kind}=${d.name}`;
      const have = devices.get(name);
      if (have !== undefined && have.s.priority === s.priority) {
        const files = conflicts.get(name) ?? [have.s.file];
        if (!files.includes(s.file)) files.push(s.file);
        conflicts.set(name, files);
        continue;
      }
      if (have === undefined || have.s.priority < s.priority) {
        devices.set(name, { s, edits: d.containerEdits });
      }
    }
  }
  for (const name of conflicts.keys()) devices.delete(name);
  return { devices, conflicts };
}

/** One line for a name two specs in one directory define. */
export function conflictText(name: string, files: readonly string[]): string {
  return `${name}: defined by ${files.length} CDI specs in one directory (${
    files.join(", ")
  }), so no engine can resolve it (Podman: "unresolvable CDI devices"); remove all but one`;
}

/** The edits the named devices bring: each spec's common edits once, then each device's own. */
export interface ResolvedCdi {
  edits: CdiEdits[];
  names: string[];
}

/** Resolves fully qualified CDI names against the specs in `dirs`. */
export function resolveCdi(
  dirs: readonly string[],
  names: readonly string[],
  specs = loadSpecs(dirs),
): ResolvedCdi {
  const { devices, conflicts } = cdiRegistry(specs);
  const edits: CdiEdits[] = [];
  const commons = new Set<LoadedSpec>();
  for (const n of names) {
    const hit = devices.get(n);
    const clash = conflicts.get(n);
    if (clash !== undefined) {
      throw new GpuctlError(`CDI device ${quote(n)}`, conflictText(n, clash).slice(n.length + 2));
    }
    if (hit === undefined) {
      throw new GpuctlError(
        `CDI device ${quote(n)}`,
        `is not defined by the CDI specs in ${
          dirs.join(", ")
        } (run 'gpuctl cdi list'; 'gpuctl cdi generate' writes one)`,
      );
    }
    if (!commons.has(hit.s)) {
      commons.add(hit.s);
      if (hit.s.spec.containerEdits) edits.push(hit.s.spec.containerEdits);
    }
    edits.push(hit.edits);
  }
  return { edits, names: [...names] };
}
