/**
 * `deno run -A tools/gpu_host.ts CMD [ARGS…]`: runs CMD in a private mount namespace in which this machine looks
 * like a GPU host that also has NVIDIA's toolkit installed, then fails if CMD changed any path a GPU host keeps
 * its driver, engines or gpuctl in, or ran one of the host's NVIDIA programs. The test suite must pass there
 * exactly as on a bare machine: a test that reads the host instead of what it made sees the wrong GPU, the
 * wrong spec, the wrong configuration, and fails.
 *
 * What the namespace has (none of it on the real host):
 * - `/dev/nvidiactl`, `/dev/nvidia0`, `/dev/nvidia-uvm`, `/dev/nvidia-uvm-tools`, `/dev/nvidia-modeset` and their
 *   `/dev/char` links, made with the fake driver's majors in a copy of `/dev`;
 * - a driver: the host's `libnvidia-ml.so.1` (a fake NVML serving one "host" GPU that no test expects) in
 *   `/usr/lib/x86_64-linux-gnu`, listed in `/etc/ld.so.cache` (the host's cache plus the driver);
 *   `/proc/driver/nvidia` with another driver version;
 * - NVIDIA's toolkit: `nvidia-container-runtime-hook`, `nvidia-ctk`, `nvidia-container-runtime`,
 *   `nvidia-container-cli` and `nvidia-smi` in `/usr/bin` (each records that it ran and fails), its
 *   `/etc/nvidia-container-runtime/config.toml`, its `/etc/cdi/nvidia.yaml`, and Docker and containerd
 *   configured for its runtime;
 * - an installed gpuctl's traces: `/etc/gpuctl/config.jsonc` naming a driver root that does not exist, and
 *   `/run/gpuctl` with a snapshot and a server's pid file.
 * @module
 */
import { fakeDriver, type FakeDriverSpec, LAYOUTS, MAJORS } from "../tests/fixtures/driver.ts";
import { privateMounts } from "../tests/e2e/privatens.ts";

const root = new URL("../", import.meta.url).pathname;
const enc = new TextEncoder();
const say = (s: string) => Deno.stderr.writeSync(enc.encode(`gpu-host: ${s}\n`));

if (Deno.args.length === 0) {
  say("usage: deno run -A tools/gpu_host.ts CMD [ARGS...]");
  Deno.exit(2);
}
if (Deno.uid() !== 0) {
  say("needs root (it makes device nodes and mounts in a namespace of its own)");
  Deno.exit(2);
}

/** The host's GPU: one that no test's fixture has, so a test that reads it shows itself. */
const HOST_DRIVER: FakeDriverSpec = {
  version: "550.54.15",
  cudaVersion: 12040,
  nvmlVersion: "12.550.54.15",
  gpus: [{
    name: "NVIDIA HOST GPU (a test read the host's driver)",
    brand: 2,
    uuid: "GPU-4f5e6d7c-0000-0000-0000-00000000beef",
    busId: "00000000:65:00.0",
    minor: 0,
    computeCapability: [8, 6],
    memoryMiB: 24576,
  }],
};

const S = Deno.makeTempDirSync({ prefix: "gpuctl-gpu-host-" });
Deno.chmodSync(S, 0o755);
const d = await fakeDriver(HOST_DRIVER);
const lib = `${d.root}${LAYOUTS.debian.lib}`;

// The toolkit's programs: each records its run where the check below looks, and fails.
Deno.mkdirSync(`${S}/bin`);
const ran = `${S}/host-programs-ran.log`;
for (
  const p of [
    "nvidia-container-runtime-hook",
    "nvidia-ctk",
    "nvidia-container-runtime",
    "nvidia-container-cli",
    "nvidia-smi",
  ]
) {
  Deno.writeTextFileSync(
    `${S}/bin/${p}`,
    `#!/bin/sh\necho "$0 $*" >> ${ran}\necho "the host's ${p} ran: a test used the host's NVIDIA toolkit" >&2\nexit 97\n`,
    { mode: 0o755 },
  );
}
const files: Record<string, string> = {
  "etc-cdi/nvidia.yaml": `---
cdiVersion: 0.5.0
kind: nvidia.com/gpu
devices:
- name: "0"
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
- name: all
  containerEdits:
    deviceNodes:
    - path: /dev/nvidia0
containerEdits:
  deviceNodes:
  - path: /dev/nvidiactl
  hooks:
  - hookName: createContainer
    path: /usr/bin/nvidia-ctk
    args: [nvidia-ctk, hook, update-ldcache]
`,
  "nvidia-container-runtime/config.toml": `disable-require = false
[nvidia-container-cli]
root = "/run/nvidia/driver"
ldconfig = "@/sbin/ldconfig.real"
no-cgroups = true
[nvidia-container-runtime]
mode = "cdi"
runtimes = ["docker-runc", "runc", "crun"]
[nvidia-container-runtime.modes.cdi]
default-kind = "nvidia.com/gpu"
spec-dirs = ["/etc/cdi", "/var/run/cdi"]
`,
  "docker/daemon.json": `{
    "default-runtime": "nvidia",
    "runtimes": { "nvidia": { "args": [], "path": "nvidia-container-runtime" } }
}
`,
  "containerd/config.toml": `version = 2
[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "nvidia"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
  runtime_type = "io.containerd.runc.v2"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
  BinaryName = "/usr/bin/nvidia-container-runtime"
`,
  "gpuctl/config.jsonc": `// an installed gpuctl's configuration: no test may read it
{ "driverRoot": "/nonexistent/host-driver-root", "logFile": "/nonexistent/host-gpuctl.log" }
`,
  "run-gpuctl/snapshot.json": `{"format": 1, "key": "the host's, not a test's"}\n`,
  "run-gpuctl/serve/pid": "1\n",
  "proc-driver/nvidia/version":
    `NVRM version: NVIDIA UNIX x86_64 Kernel Module  ${HOST_DRIVER.version}  Thu Feb 22 01:44:30 UTC 2024\n`,
  "proc-driver/nvidia/params": "ModifyDeviceFiles: 1\nDeviceFileMode: 438\n",
  "proc-driver/nvidia/gpus/0000:65:00.0/information": `Model: \t\t ${
    HOST_DRIVER.gpus[0]!.name
  }\nGPU UUID: \t ${HOST_DRIVER.gpus[0]!.uuid}\nBus Location: \t 0000:65:00.0\nDevice Minor: \t 0\n`,
};
for (const [f, text] of Object.entries(files)) {
  Deno.mkdirSync(`${S}/${f.slice(0, f.lastIndexOf("/"))}`, { recursive: true });
  Deno.writeTextFileSync(`${S}/${f}`, text);
}
for (const p of ["run-gpuctl", "run-gpuctl/serve"]) Deno.chmodSync(`${S}/${p}`, 0o700);

// The host's linker cache plus the driver: built into a file of ours (no link is made anywhere: -X), then shown
// at /etc/ld.so.cache. The driver's files are shown in /usr/lib/x86_64-linux-gnu by an overlay, so the cache
// names them where a packaged driver has them.
Deno.writeTextFileSync(`${S}/ld.so.conf`, `include /etc/ld.so.conf.d/*.conf\n${LAYOUTS.debian.lib}\n`);

// Run in the namespace: the directories above bound over the host's (privatens makes what the host lacks, in an
// overlay), then /dev, /proc/driver, /usr/bin and the driver's libraries, then the command between two listings
// of the watched paths.
const setup = `set -e
S=$1; shift
# /dev: a copy with the NVIDIA nodes added (devtmpfs is one for the whole machine: never write to it).
mkdir "$S/dev"
mount -t tmpfs -o mode=755 gpuhost-dev "$S/dev"
cp -a /dev/. "$S/dev/" 2>/dev/null || true
for m in pts shm mqueue hugepages; do
  if mountpoint -q "/dev/$m"; then mkdir -p "$S/dev/$m"; mount --rbind "/dev/$m" "$S/dev/$m"; fi
done
mkdir -p "$S/dev/char"
node() { rm -f "$S/dev/$1"; mknod -m 666 "$S/dev/$1" c "$2" "$3"; ln -sfn "../$1" "$S/dev/char/$2:$3"; }
node nvidiactl ${MAJORS.nvidia} 255
node nvidia-modeset ${MAJORS.nvidia} 254
node nvidia0 ${MAJORS.nvidia} 0
node nvidia-uvm ${MAJORS.uvm} 0
node nvidia-uvm-tools ${MAJORS.uvm} 1
mount --move "$S/dev" /dev
# /proc/driver/nvidia
mount --bind "$S/proc-driver" /proc/driver
# NVIDIA's programs in /usr/bin, the driver's libraries in the multiarch directory
for d in /usr/bin ${LAYOUTS.debian.lib}; do
  o=$(mktemp -d "$S/overlay.XXXXXX"); mkdir "$o/upper" "$o/work"
  mount -t overlay overlay -o "lowerdir=$d,upperdir=$o/upper,workdir=$o/work" "$d"
done
cp -a "$S"/bin/* /usr/bin/
cp -a ${lib}/libnvidia-ml.so.* ${lib}/libcuda.so.* ${LAYOUTS.debian.lib}/
ldconfig -X -f "$S/ld.so.conf" -C "$S/ld.so.cache"
mount --bind "$S/ld.so.cache" /etc/ld.so.cache
ldconfig -p | grep -q 'libnvidia-ml.so.1 ' || { echo "gpu-host: the linker cache lists no NVML" >&2; exit 1; }
bash ${root}tools/watched.sh > "$S/before"
set +e
"$@"
rc=$?
bash ${root}tools/watched.sh > "$S/after"
if ! diff -u "$S/before" "$S/after" > "$S/changed"; then
  echo "gpu-host: the command changed what a GPU host keeps (- before, + after):" >&2
  grep '^[-+][^-+]' "$S/changed" | head -40 >&2
  [ "$rc" != 0 ] || rc=1
fi
if [ -s "$S/host-programs-ran.log" ]; then
  echo "gpu-host: the host's NVIDIA programs ran:" >&2
  head -20 "$S/host-programs-ran.log" >&2
  [ "$rc" != 0 ] || rc=1
fi
exit "$rc"`;

const ns = privateMounts({
  "/etc/cdi": `${S}/etc-cdi`,
  "/var/run/cdi": `${S}/run-cdi`,
  "/etc/nvidia-container-runtime": `${S}/nvidia-container-runtime`,
  "/etc/docker": `${S}/docker`,
  "/etc/containerd": `${S}/containerd`,
  "/etc/gpuctl": `${S}/gpuctl`,
  "/run/gpuctl": `${S}/run-gpuctl`,
}, `${S}/ns`);
say(`a GPU host in a private mount namespace (${S}): ${Deno.args.join(" ")}`);
const child = new Deno.Command(ns[0]!, {
  args: [...ns.slice(1), "bash", "-c", setup, "gpu-host", S, ...Deno.args],
  stdin: "null",
}).spawn();
const status = await child.status;
try {
  Deno.removeSync(S, { recursive: true });
} catch (e) {
  say(`left ${S}: ${(e as Error).message}`);
}
Deno.exit(status.code);
