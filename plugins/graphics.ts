import type { Capability } from "./types.ts";

/** `graphics`: OpenGL, EGL, GLES and Vulkan through GLVND, plus OptiX, with their ICD and vendor files. */
export const graphics: Capability = {
  name: "graphics",
  description: "OpenGL, EGL, GLES, Vulkan (GLVND) and OptiX, with their ICD and vendor files",
  libraries: [
    "libnvidia-eglcore.so",
    "libnvidia-glcore.so",
    "libnvidia-tls.so",
    "libnvidia-glsi.so",
    "libnvidia-fbc.so",
    "libnvidia-ifr.so",
    "libnvidia-rtcore.so",
    "libnvoptix.so",
    "libGLX_nvidia.so",
    "libEGL_nvidia.so",
    "libGLESv2_nvidia.so",
    "libGLESv1_CM_nvidia.so",
    "libnvidia-glvkspirv.so",
    "libnvidia-cbl.so",
  ],
  files: [
    {
      candidates: ["/usr/share/glvnd/egl_vendor.d/10_nvidia.json", "/etc/glvnd/egl_vendor.d/10_nvidia.json"],
    },
    { candidates: ["/etc/vulkan/icd.d/nvidia_icd.json", "/usr/share/vulkan/icd.d/nvidia_icd.json"] },
    {
      candidates: [
        "/etc/vulkan/implicit_layer.d/nvidia_layers.json",
        "/usr/share/vulkan/implicit_layer.d/nvidia_layers.json",
      ],
    },
    { candidates: ["/usr/share/egl/egl_external_platform.d/15_nvidia_gbm.json"] },
    { candidates: ["/usr/share/egl/egl_external_platform.d/10_nvidia_wayland.json"] },
    { candidates: ["/usr/share/nvidia/nvoptix.bin"] },
  ],
  symlinks: [{ link: "libGLX_indirect.so.0", target: "libGLX_nvidia.so.0" }],
};
