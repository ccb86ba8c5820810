/**
 * `gpuctl install`: its arguments; the work is `system/install.ts`'s.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
import { parse } from "./args.ts";
import type { Context } from "./context.ts";
import { CDI_OUTPUT } from "../cdi/spec.ts";
import { install, type InstallIo, uninstall } from "../system/install.ts";

export const HELP = `Usage: gpuctl install [--prefix DIR] [--lib-dir LIBDIR] [--link] [--nvidia-names]
                      [--cdi [--cdi-output FILE] [--cdi-no-hook]]
       gpuctl install --uninstall [--force] [--prefix DIR] [--lib-dir LIBDIR]

Installs this gpuctl on the host:
  LIBDIR/<version>-<digest>/gpuctl   a copy of this executable, the only file the names below run
                                     (LIBDIR default: /usr/local/lib/gpuctl, beside DIR)
  DIR/gpuctl                         a link to that copy (DIR default: /usr/local/bin)
  DIR/gpuctl-runtime                 a small front: runc's commands, and containers whose config.json
                                     asks for no GPU, go straight to the runtime without starting gpuctl
  DIR/nvidia-container-runtime-hook  a small front too, the name Docker's --gpus looks for
Both fronts hand a GPU container's work to 'gpuctl serve' when it runs, and run gpuctl otherwise. From a
packed gpuctl they are its static C launcher with their settings after it (no shell per container);
otherwise POSIX sh scripts that decide the same way.
With --nvidia-names, also NVIDIA's other names, as links (never over a file that is there): nvidia-ctk
(gpuctl, answering to NVIDIA's command line), nvidia-container-runtime and nvidia-container-toolkit.
With --link, the copy is a hard link where it can be (for a package manager's file, which it replaces
by a rename, never in place). With --cdi, also writes the CDI spec (gpuctl cdi generate) to FILE (default
/var/run/cdi/nvidia.json), its hook being DIR/nvidia-container-runtime-hook; with --cdi-no-hook, a spec with
no hook at all (cdi generate --no-hook: no process per container, and what that gives up).

Upgrade: run the new gpuctl's install. Each file is replaced by an atomic rename, so a container
starting meanwhile gets the old gpuctl or the new one; the previous copy is kept for containers
already started with it; a running 'gpuctl serve' is told to restart (SIGHUP). Running install
again changes nothing; a file of those names that gpuctl did not create is never replaced. The
fronts hold the configuration's runtimes, swarmResource, cdiAnnotationPrefixes, cacheDir and
nvmlTimeout: run install again after changing them.

--uninstall removes all of it, and what gpuctl kept at run time in cacheDir (the driver snapshot,
kept plans and linker caches, gpuctl serve's directory), and nothing else, unless a Docker, containerd
or CRI-O configuration or a CDI spec still names it, or gpuctl serve runs: then it removes nothing and
names each, with the command that removes the reference or stops the server. --force removes it
anyway, and names what now points nowhere (a running server and its directory are left).
  --docker-config FILE      Docker's daemon.json (default /etc/docker/daemon.json)
  --containerd-config FILE  containerd's config.toml (default /etc/containerd/config.toml)
  --crio-config FILE        gpuctl's CRI-O drop-in (default /etc/crio/crio.conf.d/99-gpuctl.conf)
The CDI specs looked at are those in cdiSpecDirs.

From source or the bundle (deno run) there is no single executable to copy: the fronts are then sh
and run Deno on this checkout, for development; build dist/gpuctl (deno task dist) for a host.
`;

function options(args: string[]) {
  return parse("install", args, {
    prefix: { type: "string" },
    "lib-dir": { type: "string" },
    uninstall: { type: "boolean" },
    force: { type: "boolean" },
    link: { type: "boolean" },
    cdi: { type: "boolean" },
    "cdi-output": { type: "string" },
    "cdi-no-hook": { type: "boolean" },
    "docker-config": { type: "string" },
    "containerd-config": { type: "string" },
    "crio-config": { type: "string" },
    "nvidia-names": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
}

function absolute(flag: string, path: string): string {
  if (!path.startsWith("/")) throw new GpuctlError(`install ${flag}`, "must be an absolute path");
  return path.replace(/\/+$/, "") || "/";
}

export async function run(ctx: Context, args: string[]): Promise<number> {
  const { values } = await options(args);
  if (values.help) {
    ctx.out(HELP);
    return 0;
  }
  const prefix = absolute("--prefix", values.prefix ?? "/usr/local/bin");
  const libDir = absolute(
    "--lib-dir",
    values["lib-dir"] ?? `${prefix.slice(0, prefix.lastIndexOf("/")) || ""}/lib/gpuctl`,
  );
  const io: InstallIo = {
    get config() {
      return ctx.config;
    },
    configPath: ctx.globals.configPath,
    out: (t) => ctx.out(t),
    warn: (l) => ctx.warn(l),
    err: (l) => ctx.err(l),
  };
  if (values.uninstall) {
    return await uninstall(io, {
      prefix,
      libDir,
      force: values.force === true,
      ...(values["docker-config"] !== undefined ? { dockerConfig: values["docker-config"] } : {}),
      ...(values["containerd-config"] !== undefined ? { containerdConfig: values["containerd-config"] } : {}),
      ...(values["crio-config"] !== undefined ? { crioDropIn: values["crio-config"] } : {}),
    });
  }
  if (values.force) throw new GpuctlError("install --force", "goes with --uninstall");
  if (!values.cdi && (values["cdi-output"] !== undefined || values["cdi-no-hook"])) {
    throw new GpuctlError(
      `install ${values["cdi-no-hook"] ? "--cdi-no-hook" : "--cdi-output"}`,
      "goes with --cdi",
    );
  }
  await install(io, {
    prefix,
    libDir,
    link: values.link === true,
    nvidiaNames: values["nvidia-names"] === true,
  });
  if (!values.cdi) return 0;
  const { run: cdi } = await import("./cdi.ts");
  return await cdi(ctx, [
    "generate",
    "--output",
    values["cdi-output"] ?? CDI_OUTPUT,
    ...(values["cdi-no-hook"] ? ["--no-hook"] : ["--hook-path", `${prefix}/nvidia-container-runtime-hook`]),
  ]);
}
