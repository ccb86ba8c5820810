/**
 * What every doctor check shares: its result, the inputs, and the few ways it looks at a file.
 * @module
 */
import type { Config } from "../config/schema.ts";

export { exists } from "../ffi/libc.ts";

export type Status = "ok" | "warn" | "fail" | "skip";

export interface Check {
  id: string;
  status: Status;
  /** What it saw, one line. */
  saw: string;
  /** For warn and fail: the command (or step) that fixes it. */
  fix?: string;
}

export const ENGINES = ["docker", "containerd", "crio", "podman"] as const;
export type Engine = (typeof ENGINES)[number];

export interface DoctorInputs {
  config: Config;
  /** The config file in use, or null for defaults. */
  configFile: string | null;
  configError: string | null;
  /** NVIDIA's config.toml, when it is what was read (gpuctl having none), with its keys that did not carry over. */
  nvidiaConfig?: { file: string; unmapped: { key: string; why: string }[] } | null;
  /** Where gpuctl-runtime and nvidia-container-runtime-hook should be. */
  prefix: string;
  engines: ReadonlySet<Engine>;
  dockerConfig: string;
  containerdConfig: string;
  crioDropIn: string;
  /** Where Podman reads CDI specs. */
  podmanCdiDirs: readonly string[];
  /** NVML, in a child process: the GPUs it sees or why it failed. */
  nvml: () => Promise<{ gpus: number; version: string } | { error: string }>;
  /** The plan for NVIDIA_VISIBLE_DEVICES=all: what it would inject, or why not. */
  plan: () => Promise<{ gpus: number; migs: number; files: number; nodes: number } | { error: string }>;
  /** The plugin files' parse errors. */
  plugins: () => Promise<string[]>;
  /** The low-level runtime check. */
  runtime: () => Promise<Check>;
}

/** What earlier checks found that later ones depend on. */
export interface Seen {
  /** The kernel module's version, or null when none is loaded. */
  kernel: string | null;
  /** The user-space libraries' version and the file it was read from. */
  user: { version: string; file: string } | null;
  /** Whether NVML answered (with or without GPUs). */
  nvmlAnswered: boolean;
  /** The checks so far. */
  checks: readonly Check[];
}

export const ok = (id: string, saw: string): Check => ({ id, status: "ok", saw });
export const warn = (id: string, saw: string, fix: string): Check => ({ id, status: "warn", saw, fix });
export const fail = (id: string, saw: string, fix: string): Check => ({ id, status: "fail", saw, fix });
export const skip = (id: string, saw: string): Check => ({ id, status: "skip", saw });
export const count = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;

/** The file's text, or null when it cannot be read (absent, a directory, no permission): the check says so. */
export function read(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch { // absent, a directory or not readable: the check says which file
    return null;
  }
}

/** Whether `p` is a regular file someone may execute. */
export function isExecutable(p: string): boolean {
  try {
    const st = Deno.statSync(p);
    return st.isFile && ((st.mode ?? 0) & 0o111) !== 0;
  } catch { // absent
    return false;
  }
}
