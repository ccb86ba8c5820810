/**
 * The command line of the `container-edits` hook (a CDI spec's `createContainer` hook, and the shim's in `run`):
 * the edits only code in the container's mount namespace can make, said as arguments. Written by CDI generation
 * and the shim, read by the hook (in a gpuctl process, or in gpuctl serve): one codec, so they cannot drift.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
import type { InsideEdits } from "./edits.ts";

/** What a `container-edits` hook is asked to do (its command line, see {@link editArgs}). */
export interface EditArgs {
  symlinks: InsideEdits["symlinks"];
  ldcache: InsideEdits["ldcache"];
  /** Every GPU the spec knows; the container gets those whose /dev/nvidia<minor> it has. */
  gpus: { minor: number; name: string }[];
  driverVersion: string;
  compat: boolean;
  proc: boolean;
}

/** The command line of a `container-edits` hook for these edits (parsed back by {@link parseEditArgs}). */
export function editArgs(a: EditArgs): string[] {
  return [
    "--driver-version",
    a.driverVersion,
    ...(a.compat ? ["--cuda-compat"] : []),
    ...(a.proc ? ["--proc"] : []),
    ...a.symlinks.flatMap((s) => ["--link", `${s.path}::${s.target}`]),
    ...a.ldcache.flatMap((e) => ["--lib", `${e.soname}::${e.path}${e.bits === 32 ? "::32" : ""}`]),
    ...a.gpus.flatMap((g) => ["--gpu", `${g.minor}::${g.name}`]),
  ];
}

/** Parses a `container-edits` hook's command line; errors name the argument. */
export function parseEditArgs(args: readonly string[]): EditArgs {
  const out: EditArgs = {
    symlinks: [],
    ldcache: [],
    gpus: [],
    driverVersion: "",
    compat: false,
    proc: false,
  };
  const bad = (a: string, why: string): never => {
    throw new GpuctlError(`hook container-edits ${a}`, why);
  };
  const abs = (p: string) => p.startsWith("/") && !p.split("/").includes("..");
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = () => args[++i] ?? bad(a, "needs a value");
    switch (a) {
      case "--driver-version": {
        const v = value();
        if (!/^\d+(\.\d+)*$/.test(v)) bad(a, "is not a driver version");
        out.driverVersion = v;
        break;
      }
      case "--cuda-compat":
        out.compat = true;
        break;
      case "--proc":
        out.proc = true;
        break;
      case "--link": {
        const [path, target, ...rest] = value().split("::");
        if (!path || !abs(path) || !target || target.includes("/") || rest.length > 0) {
          bad(a, "must be /path/in/container::target-file-name");
        }
        out.symlinks.push({ path: path!, target: target! });
        break;
      }
      case "--lib": {
        const [soname, path, bits, ...rest] = value().split("::");
        if (
          !soname || soname.includes("/") || !path || !abs(path) || (bits !== undefined && bits !== "32") ||
          rest.length
        ) {
          bad(a, "must be soname::/path/in/container[::32]");
        }
        out.ldcache.push({ soname: soname!, path: path!, bits: bits === "32" ? 32 : 64 });
        break;
      }
      case "--gpu": {
        const [minor, name, ...rest] = value().split("::");
        if (!/^\d+$/.test(minor ?? "") || !/^[0-9a-fA-F:.]+$/.test(name ?? "") || rest.length > 0) {
          bad(a, "must be <minor>::<bus id>");
        }
        out.gpus.push({ minor: Number(minor), name: name! });
        break;
      }
      default:
        bad(a, "is not an option of this hook");
    }
  }
  if (out.driverVersion === "") bad("--driver-version", "is required");
  return out;
}
