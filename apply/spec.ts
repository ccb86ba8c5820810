/**
 * The runtime shim's work at `create`: the plan written into config.json (device nodes with their cgroup rules,
 * bind mounts, environment), and the linker cache and library links prepared in the bundle's rootfs by
 * descriptor — so a GPU container needs no hook process at all. In `hook` mode only the prestart hook is added.
 * @module
 */
import type { Logger } from "../log/log.ts";
import { addToLists, type ListAddition } from "../oci/edit.ts";
import type { OciSpec } from "../oci/spec.ts";
import type { Plan } from "../plan/plan.ts";
import { destination, libraryDirs } from "./container.ts";
import { InRoot } from "./inroot.ts";
import { updateLdCache } from "./ldcache.ts";

/** The hook entry the shim adds in hook mode (and Docker's `--gpus` adds): gpuctl as the NVIDIA hook. */
export interface HookEntry {
  path: string;
  args: string[];
  env: string[];
}

const HOOK_NAMES = new Set(["nvidia-container-runtime-hook", "nvidia-container-toolkit"]);
const base = (p: unknown) => (typeof p === "string" ? p.slice(p.lastIndexOf("/") + 1) : "");

/** Whether the spec already runs an NVIDIA-compatible prestart hook (added by Docker's --gpus, or by us). */
export function hasNvidiaHook(spec: OciSpec): boolean {
  const pre = (spec.hooks as { prestart?: { path?: unknown; args?: unknown[] }[] } | undefined)?.prestart ??
    [];
  return pre.some((h) => HOOK_NAMES.has(base(h.path)) || HOOK_NAMES.has(base(h.args?.[0])));
}

/** Adds the prestart hook (unless one is there); returns the new config.json text. */
export function addHook(text: string, spec: OciSpec, hook: HookEntry): string {
  if (hasNvidiaHook(spec)) return text;
  return addToLists(text, spec, [{ path: ["hooks", "prestart"], items: [hook] }]);
}

/**
 * Writes `plan` into config.json text and prepares the rootfs (library links, ld.so.cache). Returns the new
 * text, or `null` when the rootfs cannot be reached (the caller then falls back to the hook).
 */
export function applyToSpec(
  text: string,
  spec: OciSpec,
  plan: Plan,
  rootfs: string,
  log: Logger,
): string | null {
  let root: InRoot;
  try {
    root = InRoot.open(rootfs);
  } catch (e) {
    log.warn("rootfs not reachable at create; using the hook", { rootfs, error: String(e) });
    return null;
  }
  let dirs;
  try {
    dirs = libraryDirs(root);
    for (const s of plan.symlinks) {
      root.symlink(s.libraryDir === "lib32" ? dirs.lib32 : dirs.lib, s.link, s.target);
    }
    updateLdCache(root, plan, dirs, log);
  } finally {
    root.close();
  }
  const mounts = plan.mounts.filter((m) => m.kind !== "proc").map((m) => ({
    destination: destination(m, dirs),
    type: "bind",
    source: m.hostPath,
    // The plan's options, as an OCI bind mount that runc keeps out of mount propagation.
    options: [...m.options.filter((o) => o !== "bind"), "rbind", "rprivate"],
  }));
  const additions: ListAddition[] = [
    {
      path: ["linux", "devices"],
      items: plan.deviceNodes.map((n) => ({
        path: n.path,
        type: "c",
        major: n.major,
        minor: n.minor,
        fileMode: n.fileMode,
        uid: n.uid,
        gid: n.gid,
      })),
      same: (a, b) => (a as { path?: string }).path === (b as { path: string }).path,
    },
    {
      path: ["linux", "resources", "devices"],
      items: plan.deviceNodes.map((n) => ({
        allow: true,
        type: "c",
        major: n.major,
        minor: n.minor,
        access: "rwm",
      })),
    },
    {
      path: ["mounts"],
      items: mounts,
      // A mount the container already has at that destination (the user's own) wins.
      same: (a, b) =>
        (a as { destination?: string }).destination === (b as { destination: string }).destination,
    },
    {
      path: ["process", "env"],
      items: Object.entries(plan.env).map(([k, v]) => `${k}=${v}`),
      same: (a, b) => typeof a === "string" && a.split("=")[0] === (b as string).split("=")[0],
    },
  ];
  return addToLists(text, spec, additions);
}
