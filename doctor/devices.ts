/**
 * The device nodes' checks: every NVIDIA node with the major /proc/devices gives, and the /dev/char links.
 * @module
 */
import type { Config } from "../config/schema.ts";
import { charLinkProblems, nodeState, wantedNodes } from "../system/nodes.ts";
import { type Check, exists, fail, ok, skip, warn } from "./check.ts";

/** `devices.nodes` and `devices.char-links`; both skipped without a kernel driver. */
export function deviceChecks(c: Config, kernel: string | null): Check[] {
  if (kernel === null) return [skip("devices.nodes", "no kernel driver")];
  const facts = wantedNodes(c.procRoot);
  const problems: string[] = [];
  const fixes = new Set<string>();
  const wrong = new Set<string>();
  // A headless host has no nvidia_modeset module, so no /dev/nvidia-modeset: only the display capability
  // wants it, and only where the module is loaded is its absence a problem.
  const headless = !exists(`${c.sysRoot}/module/nvidia_modeset`);
  let notes = "";
  for (const n of facts.nodes) {
    const s = nodeState(c.devRoot, n);
    const host = `${c.devRoot.replace(/\/+$/, "")}${n.path.slice("/dev".length)}`;
    if (s.state === "absent" && n.kind === "modeset" && headless) {
      notes = `; no ${host} (nvidia_modeset not loaded: a headless host, so no display capability)`;
    } else if (s.state === "absent") {
      problems.push(`${host} is missing`);
      const flag = n.kind === "gpu" || n.kind === "control" ? "" : ` --${n.kind}`;
      fixes.add(`gpuctl system create-device-nodes${flag}`);
    } else if (s.state === "wrong") {
      wrong.add(n.path);
      problems.push(`${host} is ${s.saw}, not ${n.major}:${n.minor} (${n.driver} in /proc/devices)`);
      fixes.add(`rm ${host} && gpuctl system create-device-nodes`);
    } else if (s.state === "unloaded" && n.kind === "uvm" && n.minor === 0) {
      problems.push(`${n.driver} is not loaded, so there is no ${host} (CUDA needs it)`);
      fixes.add("modprobe nvidia-uvm && gpuctl system create-device-nodes --uvm");
    }
  }
  const nodes = problems.length === 0
    ? ok(
      "devices.nodes",
      `${facts.nodes.length - (notes ? 1 : 0)} nodes, majors as /proc/devices says${notes}`,
    )
    : fail("devices.nodes", problems.join("; "), [...fixes].join("; "));
  const links = charLinkProblems(c.devRoot, wrong);
  const charLinks = links.length === 0
    ? ok("devices.char-links", `${c.devRoot}/char links for every NVIDIA node`)
    : warn(
      "devices.char-links",
      `${c.devRoot}/char: ${
        links.join(", ")
      } (systemd drops a container's device access on daemon-reload without them: NVML "Unknown Error")`,
      "gpuctl system create-dev-char-symlinks",
    );
  return [nodes, charLinks];
}
