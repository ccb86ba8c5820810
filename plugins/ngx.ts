import type { Capability } from "./types.ts";

/** `ngx`: NVIDIA NGX (DLSS and friends). */
export const ngx: Capability = {
  name: "ngx",
  description: "NVIDIA NGX (DLSS)",
  libraries: ["libnvidia-ngx.so"],
};
