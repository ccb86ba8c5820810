/**
 * The runtime shim's rendering of container edits (see `edits/`): what config.json can express goes into it —
 * `linux.devices` with the host nodes' facts, matching `linux.resources.devices` rules (so runc programs the
 * device cgroup, v1 or v2, and systemd keeps the rules), read-only bind mounts, the environment — and what it
 * cannot is prepared in the rootfs by descriptor before runc starts: library links, the linker cache, and every
 * mount target, so runc finds them made and never creates a path in a rootfs an attacker may be racing. The
 * /proc/driver/nvidia view, which no spec field can give, is made after `runc create` (`shim_edit.ts`).
 * @module
 */
import type { Logger } from "../log/log.ts";
import { addToLists, type ListAddition } from "../oci/edit.ts";
import { type JNode, member } from "../oci/json.ts";
import type { OciSpec } from "../oci/spec.ts";
import { charDevice, type ContainerEdits, type InsideEdits, type SpecEdits } from "../edits/edits.ts";
import type { InRoot } from "./inroot.ts";
import { applyLdCache, applyLinks } from "./container.ts";
import type { LdCacheMemo } from "./ldcache.ts";

/** A hook entry in config.json. */
export interface HookEntry {
  path: string;
  args: string[];
  env: string[];
}

const HOOK_NAMES = new Set(["nvidia-container-runtime-hook", "nvidia-container-toolkit"]);
const base = (p: string | undefined) => (p === undefined ? "" : p.slice(p.lastIndexOf("/") + 1));

/** Whether the spec already runs an NVIDIA-compatible prestart hook (added by Docker's --gpus, or by us). */
export function hasNvidiaHook(spec: Pick<OciSpec, "prestart">): boolean {
  return spec.prestart.some((h) => HOOK_NAMES.has(base(h.path)) || HOOK_NAMES.has(base(h.args[0])));
}

const strMember = (n: JNode, k: string) => {
  const v = member(n, k);
  return v?.t === "str" ? v.value : undefined;
};
const numMember = (n: JNode, k: string) => {
  const v = member(n, k);
  return v?.t === "num" ? v.raw : undefined;
};

/** A hook list addition: `hooks.<name>` (a hook with the same path and arguments is not added twice). */
export function hookAddition(name: string, hooks: readonly HookEntry[]): ListAddition<HookEntry> {
  return {
    path: ["hooks", name],
    items: hooks,
    key: (h) => JSON.stringify([h.path, h.args]),
    existing: (n) => {
      const args = member(n, "args");
      return JSON.stringify([
        strMember(n, "path") ?? "",
        args?.t === "arr" ? args.items.map((a) => (a.t === "str" ? a.value : "")) : [],
      ]);
    },
  };
}

/** Adds the prestart hook (unless one is there); returns the new config.json text. */
export function addHook(text: string, spec: OciSpec, hook: HookEntry): string {
  if (hasNvidiaHook(spec)) return text;
  return addToLists(text, spec.tree, [hookAddition("prestart", [hook])]);
}

/** The config.json additions for `edits`: nodes, device-cgroup rules, mounts, environment. */
export function specAdditions(edits: SpecEdits): ListAddition[] {
  const nodes: ListAddition = {
    path: ["linux", "devices"],
    items: edits.deviceNodes.map(charDevice),
    key: (i) => (i as { path: string }).path,
    existing: (n) => strMember(n, "path"),
  };
  const rules: ListAddition = {
    path: ["linux", "resources", "devices"],
    items: edits.deviceNodes.map((n) => ({
      allow: true,
      type: "c",
      major: n.major,
      minor: n.minor,
      access: "rwm",
    })),
    key: (i) => {
      const r = i as { major: number; minor: number };
      return `true c ${r.major}:${r.minor} rwm`;
    },
    existing: (n) => {
      const allow = member(n, "allow");
      return `${allow?.t === "bool" ? allow.value : ""} ${strMember(n, "type")} ${numMember(n, "major")}:${
        numMember(n, "minor")
      } ${strMember(n, "access")}`;
    },
  };
  const mounts: ListAddition = {
    path: ["mounts"],
    // The edit's options, as an OCI bind mount that runc keeps out of mount propagation.
    items: edits.mounts.map((m) => ({
      destination: m.containerPath,
      type: "bind",
      source: m.hostPath,
      options: [...m.options, "rbind", "rprivate"],
    })),
    // A mount the container already has at that destination (the user's own) wins.
    key: (i) => (i as { destination: string }).destination,
    existing: (n) => strMember(n, "destination"),
  };
  const env: ListAddition = {
    path: ["process", "env"],
    items: edits.env,
    key: (e) => (e as string).split("=")[0]!,
    existing: (n) => (n.t === "str" ? n.value.split("=")[0] : undefined),
  };
  return [nodes, rules, mounts, env] as ListAddition[];
}

/**
 * Prepares the rootfs for `edits` by descriptor: every mount target (runc then only mounts onto what exists),
 * then {@link prepareFiles}.
 */
export function prepareRootfs(
  root: InRoot,
  edits: ContainerEdits,
  compat: boolean,
  log: Logger,
  memo: LdCacheMemo | null = null,
): void {
  prepareTargets(root, edits.spec, log);
  prepareFiles(root, edits.inside, compat, log, memo);
}

/** Every mount target of `edits`, made in the rootfs by descriptor: these must exist before runc reads the spec. */
export function prepareTargets(root: InRoot, edits: Pick<SpecEdits, "mounts">, log: Logger): void {
  for (const m of edits.mounts) {
    root.release(root.mountTarget(m.containerPath, m.dir ? "dir" : "file", (msg) => log.debug(msg)));
  }
}

/**
 * The library links and the linker cache (with the image's CUDA compat libraries first when they are newer), in
 * the rootfs by descriptor. runc never touches these paths, so for `create` this runs while runc creates the
 * container.
 */
export function prepareFiles(
  root: InRoot,
  edits: InsideEdits,
  compat: boolean,
  log: Logger,
  memo: LdCacheMemo | null = null,
): void {
  applyLinks(root, edits);
  applyLdCache(root, edits, compat, log, memo);
}

/** config.json text with `edits` written into it (see {@link specAdditions}). */
export function applyToSpec(
  text: string,
  spec: OciSpec,
  edits: SpecEdits,
  o: { cgroups: boolean } = { cgroups: true },
): string {
  const [nodes, rules, mounts, env] = specAdditions(edits);
  // noCgroups: no device-cgroup rules (a rootless runtime cannot apply them); the nodes are still listed.
  return addToLists(text, spec.tree, o.cgroups ? [nodes!, rules!, mounts!, env!] : [nodes!, mounts!, env!]);
}
