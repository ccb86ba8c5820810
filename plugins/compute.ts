import type { Capability } from "./types.ts";

/** `compute`: CUDA and OpenCL. */
export const compute: Capability = {
  name: "compute",
  description: "CUDA and OpenCL: libcuda, the PTX JIT, NVVM, OpenCL ICD, MPS, /dev/nvidia-uvm",
  libraries: [
    "libcuda.so",
    "libcudadebugger.so",
    "libnvidia-opencl.so",
    "libnvidia-gpucomp.so",
    "libnvidia-ptxjitcompiler.so",
    "libnvidia-fatbinaryloader.so",
    "libnvidia-allocator.so",
    "libnvidia-compiler.so",
    "libnvidia-pkcs11.so",
    "libnvidia-pkcs11-openssl3.so",
    "libnvidia-nvvm.so",
    "libnvidia-tileiras.so",
  ],
  binaries: ["nvidia-cuda-mps-control", "nvidia-cuda-mps-server"],
  ipcs: [{ path: "/tmp/nvidia-mps", kind: "dir" }],
  deviceNodes: ["nvidia-uvm", "nvidia-uvm-tools"],
  files: [{ candidates: ["/etc/OpenCL/vendors/nvidia.icd"] }],
  symlinks: [{ link: "libcuda.so", target: "libcuda.so.1" }],
};
