import type { Capability } from "./types.ts";

/** `display`: graphics plus the mode-setting node, for containers that drive a display. */
export const display: Capability = {
  name: "display",
  description: "graphics plus /dev/nvidia-modeset and the X11 configuration, for driving a display",
  implies: ["graphics"],
  deviceNodes: ["nvidia-modeset"],
  files: [{ candidates: ["/usr/share/X11/xorg.conf.d/10-nvidia.conf"] }],
};
