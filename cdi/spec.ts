/**
 * Container Device Interface specs: the shapes gpuctl writes and reads, the version a spec needs, and the checks
 * a spec passes before it is written (the engines refuse a spec that fails them, and then every GPU container
 * fails with it).
 *
 * Version rules (CDI's own): a device name that starts with a digit, or a device node with `hostPath`, needs
 * 0.5.0; a mount with `type` 0.4.0; annotations 0.6.0; `additionalGids` 0.7.0. gpuctl declares the lowest version
 * that expresses what the spec uses, so engines with older CDI libraries (Podman 4.x) read it.
 * @module
 */
import { GpuctlError, quote } from "../errors/mod.ts";
import { isCdiName } from "./names.ts";

export interface CdiDeviceNode {
  path: string;
  hostPath?: string;
  type?: string;
  major?: number;
  minor?: number;
  fileMode?: number;
  permissions?: string;
  uid?: number;
  gid?: number;
}

export interface CdiMount {
  hostPath: string;
  containerPath: string;
  type?: string;
  options?: string[];
}

export interface CdiHook {
  hookName: string;
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export interface CdiEdits {
  env?: string[];
  deviceNodes?: CdiDeviceNode[];
  mounts?: CdiMount[];
  hooks?: CdiHook[];
  additionalGids?: number[];
}

export interface CdiDevice {
  name: string;
  annotations?: Record<string, string>;
  containerEdits: CdiEdits;
}

export interface CdiSpec {
  cdiVersion: string;
  kind: string;
  annotations?: Record<string, string>;
  devices: CdiDevice[];
  containerEdits?: CdiEdits;
}

/** Known spec versions, oldest first. */
/** Where gpuctl puts the host's CDI spec: `install --cdi`, the systemd unit and every fix that names it. */
export const CDI_OUTPUT = "/var/run/cdi/nvidia.json";

export const CDI_VERSIONS = [
  "0.1.0",
  "0.2.0",
  "0.3.0",
  "0.4.0",
  "0.5.0",
  "0.6.0",
  "0.7.0",
  "0.8.0",
  "1.0.0",
  "1.1.0",
];

const HOOK_NAMES = new Set([
  "prestart",
  "createRuntime",
  "createContainer",
  "startContainer",
  "poststart",
  "poststop",
]);

/** The lowest CDI version that expresses everything `spec` uses. */
export function minimumVersion(spec: Omit<CdiSpec, "cdiVersion">): string {
  const edits = [spec.containerEdits ?? {}, ...spec.devices.map((d) => d.containerEdits)];
  if (edits.some((e) => (e.additionalGids?.length ?? 0) > 0)) return "0.7.0";
  const cls = spec.kind.slice(spec.kind.indexOf("/") + 1);
  if (
    Object.keys(spec.annotations ?? {}).length > 0 ||
    spec.devices.some((d) => Object.keys(d.annotations ?? {}).length) ||
    cls.includes(".")
  ) return "0.6.0";
  if (
    spec.devices.some((d) => /^[0-9]/.test(d.name)) ||
    edits.some((e) => e.deviceNodes?.some((n) => n.hostPath))
  ) {
    return "0.5.0";
  }
  if (edits.some((e) => e.mounts?.some((m) => m.type !== undefined && m.type !== ""))) return "0.4.0";
  return "0.3.0";
}

/** Checks a spec as the engines' CDI libraries would; throws naming `file` and the first problem. */
export function validateSpec(spec: CdiSpec, file: string): void {
  const bad = (why: string): never => {
    throw new GpuctlError(file, why);
  };
  checkShape(spec, bad);
  if (!CDI_VERSIONS.includes(spec.cdiVersion)) {
    bad(`cdiVersion ${quote(spec.cdiVersion)} is not a CDI version`);
  }
  if (!isCdiName(`${spec.kind}=x`)) bad(`kind ${quote(spec.kind)} is not vendor/class`);
  if (CDI_VERSIONS.indexOf(spec.cdiVersion) < CDI_VERSIONS.indexOf(minimumVersion(spec))) {
    bad(`cdiVersion ${spec.cdiVersion} is too low for what the spec uses (it needs ${minimumVersion(spec)})`);
  }
  if (!Array.isArray(spec.devices) || spec.devices.length === 0) bad("has no devices");
  const names = new Set<string>();
  for (const d of spec.devices) {
    if (typeof d.name !== "string" || !isCdiName(`${spec.kind}=${d.name}`)) {
      bad(`device name ${quote(String(d.name))} is not valid`);
    }
    if (names.has(d.name)) bad(`device ${quote(d.name)} is defined twice`);
    names.add(d.name);
    checkEdits(d.containerEdits, `device ${d.name}`, bad);
  }
  if (spec.containerEdits) checkEdits(spec.containerEdits, "containerEdits", bad);
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/**
 * The spec's shape, before anything reads it: objects where objects go, lists of objects where lists go, strings
 * where strings go. A spec file is anyone's (another vendor's, or a broken one): nothing of it is read before this.
 */
function checkShape(spec: unknown, bad: (why: string) => never): void {
  if (!isObject(spec)) bad("is not a CDI spec (not an object at the top)");
  const s = spec as Record<string, unknown>;
  if (typeof s.cdiVersion !== "string") bad('has no "cdiVersion" string');
  if (typeof s.kind !== "string") bad('has no "kind" string');
  if (!Array.isArray(s.devices)) bad('"devices" is not a list');
  const edits = (e: unknown, where: string) => {
    if (e === undefined) return;
    if (!isObject(e)) bad(`${where}: containerEdits is not an object`);
    for (const k of ["env", "deviceNodes", "mounts", "hooks"]) {
      const list = (e as Record<string, unknown>)[k];
      if (list === undefined || list === null) continue;
      if (!Array.isArray(list)) bad(`${where}: "${k}" is not a list`);
      for (const item of list as unknown[]) {
        if (k === "env" ? typeof item !== "string" : !isObject(item)) {
          bad(`${where}: an item of "${k}" is not ${k === "env" ? "a string" : "an object"}`);
        }
        if (k === "hooks" && isObject(item) && item.args !== undefined && !Array.isArray(item.args)) {
          bad(`${where}: a hook's "args" is not a list`);
        }
      }
    }
  };
  for (const d of s.devices as unknown[]) {
    if (!isObject(d)) bad("a device is not an object");
    const name = typeof d.name === "string" ? d.name : "?";
    if (!isObject(d.containerEdits)) bad(`device ${quote(name)}: containerEdits is not an object`);
    edits(d.containerEdits, `device ${name}`);
  }
  edits(s.containerEdits, "containerEdits");
}

/**
 * How deeply `text` (JSON or YAML) nests, found in one pass before it is parsed: brackets and braces outside
 * quotes, and indentation. A parser given a spec nested a million deep takes a gigabyte and seconds.
 */
export function nesting(text: string): number {
  let depth = 0, max = 0, quote: string | null = null, lineStart = true, indent = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote !== null) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = null;
      continue;
    }
    if (lineStart) {
      if (c === " ") {
        indent++;
        continue;
      }
      max = Math.max(max, indent >> 1);
      lineStart = false;
    }
    if (c === "\n") lineStart = true, indent = 0;
    else if (c === '"' || c === "'") quote = c;
    else if (c === "[" || c === "{") max = Math.max(max, ++depth);
    else if (c === "]" || c === "}") depth--;
  }
  return max;
}

function checkEdits(e: CdiEdits, where: string, bad: (why: string) => never): void {
  if (typeof e !== "object" || e === null) bad(`${where}: containerEdits is not an object`);
  for (const v of e.env ?? []) {
    if (typeof v !== "string" || !/^[^=]+=/.test(v)) {
      bad(`${where}: env ${quote(String(v))} is not NAME=value`);
    }
  }
  for (const n of e.deviceNodes ?? []) {
    if (typeof n.path !== "string" || !n.path.startsWith("/")) {
      bad(`${where}: a device node has no absolute path`);
    }
    if (n.type !== undefined && !["b", "c", "u", "p"].includes(n.type)) {
      bad(`${where}: ${n.path} has type ${quote(n.type)}`);
    }
    if (n.permissions !== undefined && !/^[rwm]*$/.test(n.permissions)) {
      bad(`${where}: ${n.path} has bad permissions`);
    }
  }
  for (const m of e.mounts ?? []) {
    if (
      typeof m.hostPath !== "string" || typeof m.containerPath !== "string" ||
      !m.containerPath.startsWith("/")
    ) {
      bad(`${where}: a mount needs hostPath and an absolute containerPath`);
    }
  }
  for (const h of e.hooks ?? []) {
    if (!HOOK_NAMES.has(h.hookName)) {
      bad(`${where}: hook name ${quote(String(h.hookName))} is not an OCI hook`);
    }
    if (typeof h.path !== "string" || !h.path.startsWith("/")) bad(`${where}: a hook has no absolute path`);
  }
}
