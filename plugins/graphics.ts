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
    "libnvidia-vulkan-producer.so",
  ],
  ownVersionLibraries: [
    "libnvidia-egl-gbm.so",
    "libnvidia-egl-wayland.so",
    "libnvidia-egl-wayland2.so",
    "libnvidia-egl-xcb.so",
    "libnvidia-egl-xlib.so",
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
    // Each EGL external platform's file names its library: given only with it.
    {
      candidates: ["/usr/share/egl/egl_external_platform.d/15_nvidia_gbm.json"],
      library: "libnvidia-egl-gbm.so",
    },
    {
      candidates: ["/usr/share/egl/egl_external_platform.d/10_nvidia_wayland.json"],
      library: "libnvidia-egl-wayland.so",
    },
    {
      candidates: ["/usr/share/egl/egl_external_platform.d/09_nvidia_wayland2.json"],
      library: "libnvidia-egl-wayland2.so",
    },
    {
      candidates: ["/usr/share/egl/egl_external_platform.d/20_nvidia_xcb.json"],
      library: "libnvidia-egl-xcb.so",
    },
    {
      candidates: ["/usr/share/egl/egl_external_platform.d/20_nvidia_xlib.json"],
      library: "libnvidia-egl-xlib.so",
    },
    { candidates: ["/usr/share/nvidia/nvoptix.bin"] },
  ],
  symlinks: [{ link: "libGLX_indirect.so.0", target: "libGLX_nvidia.so.0" }],
};
