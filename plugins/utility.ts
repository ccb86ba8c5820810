import type { Capability } from "./types.ts";

/** `utility`: NVML and the management tools (nvidia-smi). */
export const utility: Capability = {
  name: "utility",
  description: "NVML and management tools: nvidia-smi, persistenced and fabric manager sockets",
  libraries: ["libnvidia-ml.so", "libnvidia-cfg.so", "libnvidia-nscq.so"],
  binaries: ["nvidia-smi", "nvidia-debugdump", "nvidia-persistenced", "nv-fabricmanager"],
  ipcs: [
    { path: "/var/run/nvidia-persistenced/socket", kind: "socket" },
    { path: "/var/run/nvidia-fabricmanager/socket", kind: "socket" },
  ],
};
