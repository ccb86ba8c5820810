/**
 * tools/gpu_host.ts, the CI step that runs the suite on a machine made to look like a GPU host: what it shows,
 * and that it fails a command that changes what a GPU host keeps or runs one of the host's NVIDIA programs.
 */
import { assertEquals, assertStringIncludes } from "../assert.ts";
import { DENO, PROJECT } from "../helpers.ts";

async function gpuHost(script: string) {
  const o = await new Deno.Command(DENO, {
    args: ["run", "-A", "--quiet", `${PROJECT}/tools/gpu_host.ts`, "sh", "-c", script],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

Deno.test({
  name: "gpu-host: the namespace looks like a GPU host with NVIDIA's toolkit, and the host is untouched",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    // What this process sees of those paths (nothing on a bare machine; the outer namespace's when the suite
    // itself runs in one) is the same after the run.
    const seen = () =>
      ["/dev/nvidiactl", "/etc/nvidia-container-runtime", "/proc/driver/nvidia", "/etc/cdi"].map((p) => {
        try {
          const s = Deno.lstatSync(p);
          return `${p} ${s.ino} ${s.mtime?.getTime()}`;
        } catch {
          return `${p} absent`;
        }
      });
    const before = seen();
    const r = await gpuHost(
      "test -c /dev/nvidiactl && test -c /dev/nvidia0 && test -c /dev/nvidia-uvm && test -L /dev/char/195:0 && " +
        "ldconfig -p | grep -c 'libnvidia-ml.so.1 ' && cat /proc/driver/nvidia/version && ls /etc/cdi " +
        "/etc/nvidia-container-runtime /etc/gpuctl && grep -c nvidia /etc/docker/daemon.json",
    );
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stdout, "1\nNVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15");
    assertStringIncludes(r.stdout, "nvidia.yaml");
    assertStringIncludes(r.stdout, "config.toml");
    assertStringIncludes(r.stdout, "config.jsonc");
    assertEquals(seen(), before);
  },
});

Deno.test({
  name:
    "gpu-host: a command that writes where a GPU host keeps its configuration fails the step, naming the file",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const r = await gpuHost("touch /etc/cdi/left-behind.json");
    assertEquals(r.code, 1);
    assertStringIncludes(r.stderr, "gpu-host: the command changed what a GPU host keeps");
    assertStringIncludes(r.stderr, "+f 644 0:0 0");
    assertStringIncludes(r.stderr, "/etc/cdi/left-behind.json");
  },
});

Deno.test({
  name: "gpu-host: a command that runs the host's NVIDIA toolkit fails the step, naming the program",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const r = await gpuHost("nvidia-ctk --version; true");
    assertEquals(r.code, 1);
    assertStringIncludes(
      r.stderr,
      "gpu-host: the host's NVIDIA programs ran:\n/usr/bin/nvidia-ctk --version",
    );
  },
});
