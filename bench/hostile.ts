/**
 * Hostile inputs, bounded: the shim's `create` and the hook on an image whose linker cache is 24 MB (a million
 * entries) and on a config.json nested 9,999 levels deep (runc's own limit is 10,000), against the same container
 * without them. Time and peak memory (the largest resident set among the processes, from GNU time); targets:
 * under 1.5× a normal start, under 100 MB.
 * @module
 */
import { hugeCache, nestConfig } from "../tests/e2e/hostile.ts";
import { gpuctlEnvList } from "../tests/e2e/bundle.ts";
import { GPU_ENV, rig } from "./overhead.ts";

export interface HostileRow {
  name: string;
  ms: number;
  peakMiB: number;
  normalMs: number;
}

/** Runs `cmd` under GNU time `runs` times; the median wall time and the largest peak RSS. */
async function measure(cmd: string[], env: Record<string, string>, runs: number) {
  const ms: number[] = [];
  let peak = 0;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const o = await new Deno.Command("/usr/bin/time", {
      args: ["-f", "GPUCTL-PEAK %M", ...cmd],
      env,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    ms.push(performance.now() - t0);
    const err = new TextDecoder().decode(o.stderr);
    if (!o.success) throw new Error(`${cmd.join(" ")}: ${err}`);
    peak = Math.max(peak, Number(/GPUCTL-PEAK (\d+)/.exec(err)?.[1] ?? 0));
  }
  ms.sort((a, b) => a - b);
  return { ms: ms[Math.floor(runs / 2)]!, peakMiB: peak / 1024 };
}

export async function hostileTable(tmp: string, bundleJs: string, runs: number): Promise<HostileRow[]> {
  const r = await rig(tmp, bundleJs, "hostile");
  const cache = hugeCache(999_999);
  const rows: HostileRow[] = [];
  for (const path of ["shim", "hook"] as const) {
    const make = (name: string, prepare?: (rootfs: string) => void) =>
      r.bundle(`${path}-${name}`, {
        args: ["/bin/true"],
        env: GPU_ENV,
        ...(prepare ? { prepare } : {}),
        ...(path === "hook" ? { hook: { path: r.hook, env: gpuctlEnvList(r.config) } } : {}),
      });
    const normal = await make("normal");
    const big = await make("cache", (root) => Deno.writeFileSync(`${root}/etc/ld.so.cache`, cache));
    const deep = await make("deep");
    nestConfig(`${deep}/config.orig.json`, 9_999);
    const rt = path === "shim" ? r.front : "runc";
    await measure(r.lifecycle(rt, normal), r.env, 1); // builds the snapshot
    const n = await measure(r.lifecycle(rt, normal), r.env, runs);
    rows.push({ name: `${path}: normal GPU container`, ...n, normalMs: n.ms });
    for (const [name, b] of [["24 MB image linker cache", big], ["config.json nested 9,999 deep", deep]]) {
      rows.push({
        name: `${path}: ${name}`,
        ...(await measure(r.lifecycle(rt, b!), r.env, runs)),
        normalMs: n.ms,
      });
    }
  }
  return rows;
}

export function printHostile(rows: HostileRow[], runs: number): boolean {
  console.log(`\nHostile inputs, bounded (whole lifecycle; ${runs} runs, median time, largest peak RSS)`);
  let all = true;
  for (const r of rows) {
    const ratio = r.ms / r.normalMs;
    const met = ratio < 1.5 && r.peakMiB < 100;
    all &&= met;
    console.log(
      `  ${r.name.padEnd(44)} ${r.ms.toFixed(1).padStart(7)}ms ${ratio.toFixed(2)}× normal  peak ${
        r.peakMiB.toFixed(0)
      } MiB  ${met ? "bounded" : "OVER (targets: <1.5× normal, <100 MiB)"}`,
    );
  }
  return all;
}
