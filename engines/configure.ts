/**
 * Registering gpuctl-runtime with an engine, as file changes: what `gpuctl configure` writes (or shows), one
 * function per engine behind one request, the changes as a unified diff for `--dry-run`, and what to run after.
 * @module
 */
import { type FileChange, readIfExists } from "./files.ts";
import { DOCKER_CONFIG, dockerChange } from "./docker.ts";
import { CONTAINERD_CONFIG, CONTAINERD_DROPIN, containerdChanges } from "./containerd.ts";
import { CRIO_DROPIN, crioChanges } from "./crio.ts";

export const CONFIGURABLE = ["docker", "containerd", "crio"] as const;
export type Configurable = (typeof CONFIGURABLE)[number];

/** What to register, where. */
export interface ConfigureRequest {
  engine: Configurable;
  name: string;
  /** gpuctl-runtime's path. */
  path: string;
  setDefault: boolean;
  remove: boolean;
  /** Let the engine apply CDI specs itself. */
  cdi: boolean;
  /** The engine's file (default: its own). */
  file?: string;
  /** containerd: gpuctl's drop-in. */
  dropIn?: string;
  /** containerd: the version of a config.toml created. */
  newVersion: number;
  /** containerd: the annotations its runtime passes on (the CDI ones). */
  annotationPrefixes: readonly string[];
  /** containerd with `cdi`: where it reads CDI specs. */
  cdiSpecDirs: readonly string[];
}

/** The changes `r` makes to its engine's files, each checked by the engine's reader before it is written. */
export function configureChanges(r: ConfigureRequest): FileChange[] {
  const common = { name: r.name, path: r.path, setDefault: r.setDefault, remove: r.remove };
  if (r.engine === "docker") {
    const file = r.file ?? DOCKER_CONFIG;
    return [dockerChange(readIfExists(file), { ...common, file, cdi: r.cdi })];
  }
  if (r.engine === "containerd") {
    return containerdChanges({
      ...common,
      file: r.file ?? CONTAINERD_CONFIG,
      dropIn: r.dropIn ?? CONTAINERD_DROPIN,
      newVersion: r.newVersion,
      annotationPrefixes: r.annotationPrefixes,
      ...(r.cdi ? { cdi: { dirs: r.cdiSpecDirs } } : {}),
    });
  }
  return crioChanges({ ...common, file: r.file ?? CRIO_DROPIN });
}

/** The changes as a unified diff per file (a file created: against /dev/null; removed: to it), each checked. */
export async function unifiedDiff(changes: readonly FileChange[]): Promise<string> {
  for (const c of changes) c.after !== null && c.check?.(c.after);
  const { structuredPatch } = await import("diff");
  let out = "";
  for (const c of changes) {
    if (c.after === c.before) continue;
    const p = structuredPatch(
      c.before === null ? "/dev/null" : c.file,
      c.after === null ? "/dev/null" : c.file,
      c.before ?? "",
      c.after ?? "",
      "",
      "",
      { context: 3 },
    );
    out += `--- ${p.oldFileName}\n+++ ${p.newFileName}\n`;
    for (const h of p.hunks) {
      // As diff(1) numbers an empty range: the line before it.
      const at = (start: number, n: number) => `${n === 0 ? start - 1 : start},${n}`;
      out += `@@ -${at(h.oldStart, h.oldLines)} +${at(h.newStart, h.newLines)} @@\n${h.lines.join("\n")}\n`;
    }
  }
  return out;
}

/** What to run once the files are written. */
export function applyHint(r: Pick<ConfigureRequest, "engine" | "name" | "path" | "remove">): string {
  if (r.remove) {
    return `Apply: restart ${r.engine === "docker" ? "docker (systemctl reload docker)" : r.engine}\n`;
  }
  if (r.engine === "docker") {
    return `Equivalent without daemon.json: dockerd --add-runtime ${r.name}=${r.path}\n` +
      `Apply: systemctl reload docker (or: kill -HUP $(pidof dockerd)); then: docker run --runtime ${r.name} -e NVIDIA_VISIBLE_DEVICES=all ...\n`;
  }
  return `Apply: systemctl restart ${r.engine}; Kubernetes: a RuntimeClass with handler: ${r.name}\n`;
}
