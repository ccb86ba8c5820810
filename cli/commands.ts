/**
 * The command registry. Each command's module is imported only when it runs, so `gpuctl runtime state`
 * never loads NVML, the plugins or koffi.
 * @module
 */
import type { Command } from "./context.ts";

export type { Command };

export const COMMANDS: Readonly<Record<string, Command>> = {
  info: { summary: "show the driver and the GPUs (text, --csv or --json)", load: () => import("./info.ts") },
  hook: { summary: "the OCI prestart hook that puts GPUs into a container", load: () => import("./hook.ts") },
  runtime: {
    summary: "the OCI runtime shim in front of runc (also as gpuctl-runtime)",
    load: () => import("./runtime.ts"),
  },
  cdi: {
    summary: "write a CDI spec for Podman, containerd, CRI-O, Docker 25+; list CDI devices",
    load: () => import("./cdi.ts"),
  },
  config: {
    summary: "show the effective configuration and where each value came from; --default: a default file",
    load: () => import("./config.ts"),
  },
  configure: {
    summary: "register gpuctl-runtime with docker, containerd or crio",
    load: () => import("./configure.ts"),
  },
  doctor: {
    summary: "check the host, gpuctl and the engines, in order; each problem with its fix",
    load: () => import("./doctor.ts"),
  },
  system: {
    summary: "create-device-nodes, create-dev-char-symlinks: repair the host's NVIDIA nodes",
    load: () => import("./system.ts"),
  },
  serve: {
    summary: "keep gpuctl running, so that starting a GPU container starts no gpuctl process",
    load: () => import("./serve.ts"),
  },
  install: {
    summary: "install the fronts gpuctl-runtime and nvidia-container-runtime-hook; --cdi: the CDI spec",
    load: () => import("./install.ts"),
  },
  ctk: {
    summary: "NVIDIA's nvidia-ctk command line (also as nvidia-ctk): runtime configure, cdi, system, config",
    hidden: true,
    load: () => import("./ctk.ts"),
  },
  __discover: {
    summary: "the inventory as JSON, for a gpuctl that runs NVML in a child process",
    hidden: true,
    load: () => import("./discover.ts"),
  },
  list: {
    summary: "show what would be injected into a container (paths, or --json plan)",
    load: () => import("./list.ts"),
  },
  completion: {
    summary: "print a bash or zsh completion script",
    load: () => import("./completion.ts"),
  },
};

/** Names gpuctl answers to when installed as a link, and the command each one means. */
export const ARGV0_COMMANDS: Readonly<Record<string, string>> = {
  "gpuctl-runtime": "runtime",
  "nvidia-container-runtime": "runtime",
  "nvidia-container-runtime-hook": "hook",
  "nvidia-container-toolkit": "hook",
  "nvidia-ctk": "ctk",
};
