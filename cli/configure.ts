/**
 * `gpuctl configure docker|containerd|crio`: registers gpuctl-runtime with a container engine's configuration,
 * keeping the file's comments, formatting and other settings; backs up the old file; writes atomically;
 * changes nothing when it is already configured.
 * @module
 */
import {
  applyEdits,
  format,
  modify,
  parse as parseJsonc,
  type ParseError,
  printParseErrorCode,
} from "jsonc-parser";
import { GpuctlError, UsageError } from "../errors/mod.ts";
import { lineCol } from "../config/jsonc.ts";
import { writeAtomic } from "../oci/edit.ts";
import { parse } from "./args.ts";
import type { Context } from "./context.ts";

export const HELP =
  `Usage: gpuctl configure docker     [--config FILE] [--name NAME] [--runtime-path PATH] [--set-default] [--dry-run]
       gpuctl configure containerd [--config FILE] [--name NAME] [--runtime-path PATH] [--set-default] [--dry-run]
       gpuctl configure crio       [--config FILE] [--name NAME] [--runtime-path PATH] [--dry-run]

Registers gpuctl-runtime as a runtime named NAME (default "gpu") with Docker (daemon.json, default
/etc/docker/daemon.json), containerd (config.toml, default /etc/containerd/config.toml; its CRI plugin, for
Kubernetes RuntimeClass) or CRI-O (a drop-in, default /etc/crio/crio.conf.d/99-gpuctl.conf). Comments,
formatting and every other setting are kept; the old file is saved as FILE.gpuctl-backup; the new one is
written atomically. Running it again changes nothing.

Options:
  --config FILE        the engine's configuration file
  --name NAME          the runtime's name (docker run --runtime NAME; RuntimeClass handler NAME)
  --runtime-path PATH  gpuctl-runtime (default: next to this gpuctl, or /usr/local/bin/gpuctl-runtime)
  --set-default        make it the default runtime (docker, containerd)
  --dry-run            print the new file, write nothing
  -h, --help           this help
`;

const DEFAULTS: Record<string, string> = {
  docker: "/etc/docker/daemon.json",
  containerd: "/etc/containerd/config.toml",
  crio: "/etc/crio/crio.conf.d/99-gpuctl.conf",
};

function defaultRuntimePath(): string {
  if (Deno.build.standalone) {
    const exe = Deno.execPath();
    return `${exe.slice(0, exe.lastIndexOf("/"))}/gpuctl-runtime`;
  }
  return "/usr/local/bin/gpuctl-runtime";
}

function readOr(file: string, fallback: string): { text: string; existed: boolean } {
  try {
    return { text: Deno.readTextFileSync(file), existed: true };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { text: fallback, existed: false };
    throw new GpuctlError(file, `cannot be read: ${(e as Error).message}`);
  }
}

/** daemon.json with the runtime added (and made default): the new text. */
export function configureDockerText(
  text: string,
  file: string,
  name: string,
  path: string,
  setDefault: boolean,
): string {
  const errors: ParseError[] = [];
  const doc = parseJsonc(text.trim() === "" ? "{}" : text, errors, { allowTrailingComma: true });
  if (errors.length > 0) {
    throw new GpuctlError(
      `${file}:${lineCol(text, errors[0]!.offset)}`,
      `invalid JSON: ${printParseErrorCode(errors[0]!.error)}`,
    );
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    throw new GpuctlError(file, "is not a JSON object");
  }
  if (text.trim() === "") {
    const fresh: Record<string, unknown> = { runtimes: { [name]: { path } } };
    if (setDefault) fresh["default-runtime"] = name;
    return JSON.stringify(fresh, null, 2) + "\n";
  }
  let out = text;
  const runtimes = (doc as Record<string, unknown>).runtimes as Record<string, { path?: string }> | undefined;
  if (runtimes?.[name]?.path !== path) out = setKeepingFormat(out, ["runtimes", name], { path });
  if (setDefault && (doc as Record<string, unknown>)["default-runtime"] !== name) {
    out = setKeepingFormat(out, ["default-runtime"], name);
  }
  return out;
}

/** Sets a value, formatting only the inserted text, so the rest of the file keeps its exact layout. */
function setKeepingFormat(text: string, path: (string | number)[], value: unknown): string {
  const edits = modify(text, path, value, {});
  let out = text;
  // Apply back to front, formatting each inserted span alone.
  for (const e of [...edits].sort((a, b) => b.offset - a.offset)) {
    out = out.slice(0, e.offset) + e.content + out.slice(e.offset + e.length);
    const range = { offset: e.offset, length: e.content.length };
    out = applyEdits(out, format(out, range, { insertSpaces: true, tabSize: 2, eol: "\n" }));
  }
  return out;
}

function tomlString(s: string): string {
  return JSON.stringify(s);
}

/** config.toml with the runtime added to the CRI plugin (containerd config version 1, 2 or 3). */
export function configureContainerdText(
  text: string,
  name: string,
  path: string,
  setDefault: boolean,
): string {
  const version = Number(/^\s*version\s*=\s*(\d+)/m.exec(text)?.[1] ?? (text.trim() === "" ? 2 : 1));
  const plugin = version >= 3
    ? "io.containerd.cri.v1.runtime"
    : version === 2
    ? "io.containerd.grpc.v1.cri"
    : "cri";
  const base = `plugins.${tomlString(plugin)}.containerd`;
  const header = `[${base}.runtimes.${name}]`;
  const options = `[${base}.runtimes.${name}.options]`;
  let out = text.trim() === "" ? "version = 2\n" : text;
  const lines = out.split("\n");
  const at = lines.findIndex((l) => l.trim() === options);
  if (at >= 0) {
    // Already there: make sure BinaryName is ours.
    let end = lines.findIndex((l, i) => i > at && l.trim().startsWith("["));
    if (end < 0) end = lines.length;
    const bin = lines.findIndex((l, i) => i > at && i < end && /^\s*BinaryName\s*=/.test(l));
    const want = `  BinaryName = ${tomlString(path)}`;
    if (bin >= 0) {
      if (lines[bin]!.trim() !== want.trim()) lines[bin] = want;
    } else lines.splice(at + 1, 0, want);
    out = lines.join("\n");
  } else {
    if (!out.endsWith("\n")) out += "\n";
    out += `\n${header}\n  runtime_type = "io.containerd.runc.v2"\n\n${options}\n  BinaryName = ${
      tomlString(path)
    }\n`;
  }
  if (setDefault) {
    const ls = out.split("\n");
    const h = ls.findIndex((l) => l.trim() === `[${base}]`);
    const line = `  default_runtime_name = ${tomlString(name)}`;
    if (h < 0) out = out.replace(header, `[${base}]\n${line}\n\n${header}`);
    else {
      let end = ls.findIndex((l, i) => i > h && l.trim().startsWith("["));
      if (end < 0) end = ls.length;
      const cur = ls.findIndex((l, i) => i > h && i < end && /^\s*default_runtime_name\s*=/.test(l));
      if (cur >= 0) ls[cur] = line;
      else ls.splice(h + 1, 0, line);
      out = ls.join("\n");
    }
  }
  return out;
}

/** The CRI-O drop-in. */
export function crioText(name: string, path: string): string {
  return `# Written by gpuctl configure crio\n[crio.runtime.runtimes.${name}]\nruntime_path = ${
    tomlString(path)
  }\nruntime_type = "oci"\n`;
}

export async function run(ctx: Context, args: string[]): Promise<number> {
  const { values, positionals } = await parse("configure", args, {
    config: { type: "string" },
    name: { type: "string" },
    "runtime-path": { type: "string" },
    "set-default": { type: "boolean" },
    "dry-run": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, true);
  if (values.help) {
    ctx.out(HELP);
    return 0;
  }
  const engine = positionals[0];
  if (engine === undefined || !(engine in DEFAULTS) || positionals.length > 1) {
    throw new UsageError(
      "configure",
      `name one engine: docker, containerd or crio (see 'gpuctl configure --help')`,
    );
  }
  const name = values.name ?? "gpu";
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) {
    throw new UsageError("configure --name", `"${name}" is not a valid runtime name`);
  }
  const path = values["runtime-path"] ?? defaultRuntimePath();
  if (!path.startsWith("/")) throw new UsageError("configure --runtime-path", "must be an absolute path");
  const file = values.config ?? DEFAULTS[engine]!;
  const { text, existed } = readOr(file, "");
  const next = engine === "docker"
    ? configureDockerText(text, file, name, path, values["set-default"] ?? false)
    : engine === "containerd"
    ? configureContainerdText(text, name, path, values["set-default"] ?? false)
    : crioText(name, path);
  if (values["dry-run"]) {
    ctx.out(next.endsWith("\n") ? next : next + "\n");
    return 0;
  }
  if (next === text) {
    ctx.out(`${file}: runtime "${name}" is already configured (${path}); nothing changed\n`);
  } else {
    if (existed) writeAtomic(`${file}.gpuctl-backup`, text);
    else Deno.mkdirSync(file.slice(0, file.lastIndexOf("/")) || "/", { recursive: true });
    writeAtomic(file, next);
    ctx.out(
      `${file}: runtime "${name}" → ${path}${
        existed ? ` (previous file saved as ${file}.gpuctl-backup)` : ""
      }\n`,
    );
  }
  if (engine === "docker") {
    ctx.out(`Equivalent without daemon.json: dockerd --add-runtime ${name}=${path}\n`);
    ctx.out(
      `Apply: systemctl reload docker (or: kill -HUP $(pidof dockerd)); then: docker run --runtime ${name} -e NVIDIA_VISIBLE_DEVICES=all ...\n`,
    );
  } else if (engine === "containerd") {
    ctx.out(`Apply: systemctl restart containerd; Kubernetes: a RuntimeClass with handler: ${name}\n`);
  } else {
    ctx.out(`Apply: systemctl restart crio; Kubernetes: a RuntimeClass with handler: ${name}\n`);
  }
  return 0;
}
