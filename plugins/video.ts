import type { Capability } from "./types.ts";

/** `video`: NVENC, NVDEC, VDPAU and optical flow; it needs CUDA, so it brings compute too. */
export const video: Capability = {
  name: "video",
  description: "video encode/decode: NVENC, NVDEC (nvcuvid), VDPAU, optical flow (includes compute)",
  implies: ["compute"],
  libraries: ["libvdpau_nvidia.so", "libnvidia-encode.so", "libnvidia-opticalflow.so", "libnvcuvid.so"],
  symlinks: [{ link: "libnvidia-opticalflow.so", target: "libnvidia-opticalflow.so.1" }],
};
