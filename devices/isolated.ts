/**
 * NVML in a child process. A driver whose GPU fell off the bus can hang in an NVML call forever or kill its
 * caller with SIGSEGV; runc gives hooks no timeout by default, so a hang there would hang every container start.
 * The child (`gpuctl __discover`) reports each NVML call before it makes it, and prints the inventory as JSON;
 * here it gets `nvmlTimeout` seconds, and a hang or a crash becomes one line that names the call.
 * @module
 */
import type { Config } from "../config/schema.ts";
import { GpuctlError } from "../errors/mod.ts";
import { selfCommand } from "../version.ts";
import type { SourceChoice } from "./discover.ts";
import type { Inventory } from "./types.ts";

export interface Discovered {
  inventory: Inventory;
  warnings: string[];
}

/** Runs discovery in a child process with a timeout. `configPath` is the parent's `--config`, if any. */
export async function discoverIsolated(
  config: Config,
  source: SourceChoice,
  configPath: string | undefined,
): Promise<Discovered> {
  const [exe, ...pre] = selfCommand();
  // The child works with this process's configuration exactly, given on its stdin: not the file again, which a
  // command line's overrides (cdi generate --driver-root), or NVIDIA's config.toml read instead, would not be.
  void configPath;
  const child = new Deno.Command(exe!, {
    args: [...pre, "__discover", source, "--config-on-stdin"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(config)));
  await w.close();
  const out = new Response(child.stdout).text();
  const err = new Response(child.stderr).text();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((ok) => {
    timer = setTimeout(() => ok("timeout"), config.nvmlTimeout * 1000);
  });
  const status = await Promise.race([child.status, timeout]);
  clearTimeout(timer);
  const lastCall = (text: string) =>
    text.split("\n").filter((l) => l.startsWith("call ")).at(-1)?.slice(5) ?? "loading NVML";
  if (status === "timeout") {
    try {
      child.kill("SIGKILL");
    } catch { /* gone meanwhile */ }
    // What it said so far: the stream ends when the process does (a process stuck in the kernel may not).
    const said = await Promise.race([err, new Promise<string>((ok) => setTimeout(() => ok(""), 200))]);
    throw new GpuctlError(
      "NVML",
      `did not answer within ${config.nvmlTimeout} s (stuck in ${
        lastCall(said)
      }): a GPU may have fallen off the bus; check dmesg and nvidia-smi (nvmlTimeout sets the limit)`,
    );
  }
  const [stdout, stderr] = await Promise.all([out, err]);
  if (status.signal !== null) {
    throw new GpuctlError(
      "NVML",
      `crashed (${status.signal}) in ${
        lastCall(stderr)
      }: check dmesg; the GPU may need a reset, or the host a reboot`,
    );
  }
  if (!status.success) {
    const line = stderr.split("\n").find((l) => l.startsWith("gpuctl: "))?.slice("gpuctl: ".length) ??
      `discovery failed (exit ${status.code})`;
    const at = line.indexOf(": ");
    throw at > 0 ? new GpuctlError(line.slice(0, at), line.slice(at + 2)) : new GpuctlError("NVML", line);
  }
  return JSON.parse(stdout) as Discovered;
}
