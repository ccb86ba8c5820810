/**
 * gpuctl's own checks: its configuration, its plugins, the installed fronts and `gpuctl serve`.
 * @module
 */
import type { Config } from "../config/schema.ts";
import { DEFAULT_CONFIG_PATH } from "../config/schema.ts";
import { PROTOCOL, runningServer, serveDir } from "../serve/protocol.ts";
import { frontCommand, frontFresh, frontServe, readFront } from "../serve/fronts.ts";
import { type Check, type DoctorInputs, exists, fail, isExecutable, ok, warn } from "./check.ts";

/** `gpuctl.config`: the file parses; NVIDIA's config.toml read in its place says what did not carry over. */
export function configCheck(i: DoctorInputs): Check {
  if (i.configError !== null) {
    return fail(
      "gpuctl.config",
      i.configError,
      "fix the line it names ('gpuctl config --default' shows every key)",
    );
  }
  const nv = i.nvidiaConfig;
  if (nv && nv.unmapped.length > 0) {
    return warn(
      "gpuctl.config",
      `no gpuctl configuration: NVIDIA's ${nv.file} is read, and these keys did not carry over: ${
        nv.unmapped.map((u) => `${u.key} (${u.why})`).join("; ")
      }`,
      `gpuctl config --from-nvidia --output ${DEFAULT_CONFIG_PATH} (then review what it says did not carry over)`,
    );
  }
  if (nv) {
    return ok(
      "gpuctl.config",
      `no gpuctl configuration: NVIDIA's ${nv.file} is read; every key carried over`,
    );
  }
  return ok("gpuctl.config", i.configFile === null ? "no config file: defaults" : `${i.configFile} parses`);
}

/** `gpuctl.plugins`: every plugin file parses. */
export async function pluginsCheck(i: DoctorInputs): Promise<Check> {
  const errors = await i.plugins();
  return errors.length === 0
    ? ok("gpuctl.plugins", `plugins in ${i.config.pluginsDir} parse`)
    : fail("gpuctl.plugins", errors.join("; "), "fix the line it names, or remove the file");
}

/**
 * `gpuctl.links`: the runtime and hook fronts exist, the gpuctl they run is there, and the runtime front was
 * written for the configuration in use. Returns the fronts that exist, for the serve check.
 */
export function linksCheck(i: DoctorInputs): { check: Check; fronts: string[] } {
  const runtime = `${i.prefix}/gpuctl-runtime`, hook = `${i.prefix}/nvidia-container-runtime-hook`;
  const missing = [runtime, hook].filter((p) => !isExecutable(p));
  const fronts = missing.length === 0 ? [runtime, hook] : [];
  const fix = `gpuctl install --prefix ${i.prefix}`;
  // A front whose gpuctl is gone (a checkout deleted, a copy removed by hand) fails every GPU container.
  const dangling = [runtime, hook].filter((p) => !missing.includes(p)).flatMap((p) => {
    const words = frontCommand(readFront(p) ?? "") ?? [];
    const gone = words.filter((w, k) => w.startsWith("/") && (k === 0 ? !isExecutable(w) : !exists(w)));
    return gone.length === 0 ? [] : [`${p} runs ${gone[0]}, which is gone`];
  });
  if (dangling.length > 0) {
    return {
      check: fail("gpuctl.links", `${dangling.join("; ")} (every GPU container through it fails)`, fix),
      fronts,
    };
  }
  const configFile = i.configFile ?? DEFAULT_CONFIG_PATH;
  if (!missing.includes(runtime) && !frontFresh(runtime, configFile)) {
    const saw =
      `${runtime} was written for another configuration than ${configFile}, or before it changed: it sends every container to gpuctl (slower, never without its GPUs) until it is written again`;
    return { check: warn("gpuctl.links", saw, fix), fronts };
  }
  if (missing.length === 0) return { check: ok("gpuctl.links", `${runtime} and ${hook}`), fronts };
  const gpus = missing.includes(hook)
    ? ` (docker run --gpus then fails: could not select device driver "" with capabilities: [[gpu]])`
    : "";
  return { check: warn("gpuctl.links", `${missing.join(" and ")} missing${gpus}`, fix), fronts };
}

/**
 * `gpuctl.serve`: running or not is the host's choice (ok either way, said plainly); a running server that the
 * installed fronts do not reach — written by another gpuctl, or for another cacheDir — is a warning: every GPU
 * container then starts a gpuctl process after all.
 */
export function serveCheck(c: Config, fronts: readonly string[]): Check {
  const dir = serveDir(c.cacheDir);
  if (dir === null) {
    return ok("gpuctl.serve", "not available: cacheDir is null; each GPU container starts gpuctl");
  }
  // Alive as the fronts see it: the process the pid file names, started when the server did.
  const pid = runningServer(dir);
  if (pid === null) {
    return ok(
      "gpuctl.serve",
      "not running: each GPU container starts a gpuctl process (optional: systemctl enable --now gpuctl-serve)",
    );
  }
  const stale = fronts.filter((f) => {
    const s = frontServe(readFront(f) ?? "");
    return s === null || s.protocol !== PROTOCOL || s.dir !== dir;
  });
  return stale.length === 0
    ? ok("gpuctl.serve", `running (pid ${pid}, in ${dir}): GPU containers start no gpuctl process`)
    : warn(
      "gpuctl.serve",
      `running (pid ${pid}), but ${
        stale.join(" and ")
      } do not reach it (written by another gpuctl, or for another cacheDir)`,
      `gpuctl install --prefix ${stale[0]!.slice(0, stale[0]!.lastIndexOf("/"))}`,
    );
}
