/**
 * `gpuctl doctor --explain ID`: what each check looks at, why it matters to a GPU container, and which of gpuctl's
 * paths (the runtime shim, the prestart hook, CDI) it concerns.
 * @module
 */

export const EXPLAIN: Readonly<Record<string, string>> = {
  "driver.kernel":
    `Reads <procRoot>/driver/nvidia/version. Without the kernel module there is nothing to give a
container: every path fails. Fix: load the module (modprobe nvidia), installing the driver if needed.`,
  "driver.libraries":
    `Compares the version in the real file name of the NVML library gpuctl loads (nvmlLibrary,
looked up in driverRoot's linker cache, links resolved inside driverRoot) with the kernel module's. A driver
upgraded without a reboot leaves the old module loaded: NVML then says "Driver/library version mismatch" in
every container. All paths.`,
  nvml:
    `Loads NVML in a child process (bounded by nvmlTimeout) and counts the GPUs it sees. A GPU off the bus,
a hung driver or a missing /dev/nvidiactl shows here first. All paths; when NVML cannot reach a driver that
/proc shows loaded, gpuctl reads /proc instead (no MIG, no CUDA version).`,
  "devices.nodes": `Every NVIDIA device node under devRoot, with the major /proc/devices gives the driver:
the GPUs', nvidiactl, nvidia-uvm (CUDA needs it) and nvidia-modeset where nvidia_modeset is loaded (a headless
host has none, and needs none). A missing or wrong node fails containers that are given it. All paths.`,
  "devices.char-links":
    `The /dev/char/<major>:<minor> links to the NVIDIA nodes. systemd reapplies a container's
device rules on daemon-reload by those links: without them a running container loses its GPUs (NVML "Unknown
Error"). All paths.`,
  cgroups:
    `Which cgroup version and init the host has, and whether noCgroups is set: it decides how device access
is granted. Informational.`,
  runtime:
    `The low-level runtime the shim runs (runtimes): found, and runc at least 1.1.14. Older runc can be raced
into creating a mount target on the host (CVE-2024-45310), which concerns the shim's spec mode only: in hook
mode gpuctl makes its mount targets itself, by descriptor, and the check is then ok.`,
  "gpuctl.config":
    `The configuration file parses (file, line and column of the first error otherwise). Without a
file of gpuctl's own, NVIDIA's config.toml is read: the keys that did not carry over are named. All paths.`,
  "gpuctl.plugins":
    `Every declarative plugin in pluginsDir parses. A broken plugin fails the containers that ask
for its capability. All paths.`,
  "gpuctl.links":
    `gpuctl-runtime and nvidia-container-runtime-hook in the install prefix, each naming a gpuctl
that still exists and written for the current configuration. Docker's --gpus needs the hook (the prestart-hook
path); the runtime shim needs gpuctl-runtime.`,
  "gpuctl.serve": `Whether gpuctl serve runs, and whether the installed fronts reach it. Optional: without it
each GPU container starts one gpuctl process. Shim and hook paths.`,
  "cdi.specs":
    `The NVIDIA CDI specs in cdiSpecDirs: written for the loaded driver, naming files and a hook that
exist, and no device name defined by two specs of one directory (no engine can resolve such a name). The CDI
path (Podman, containerd 1.7+, CRI-O, Docker 25+) and CDI names given to the shim.`,
  "engine.docker":
    `daemon.json registers a runtime whose path exists (docker run --runtime nvidia). The shim path
under Docker.`,
  "engine.containerd":
    `containerd's configuration (with its imports) registers the runtime, its path exists, and
it keeps runc's SystemdCgroup (a RuntimeClass's pods must use the kubelet's cgroup driver). The shim path under
containerd and Kubernetes.`,
  "engine.crio": `CRI-O's drop-in names a runtime_path that exists. The shim path under CRI-O.`,
  "engine.podman":
    `An NVIDIA CDI spec where Podman reads specs (--podman-cdi-dirs; Podman 4 reads only /etc/cdi
and /var/run/cdi). The CDI path under Podman.`,
  plan:
    `Plans NVIDIA_VISIBLE_DEVICES=all with every capability, as a container asking for all would get it: GPUs,
MIG devices, nodes and files, and how long it took. All paths.`,
};
