/**
 * Hostile inputs, bounded: the shim's `create` and the hook on an image whose linker cache is 24 MB (a million
 * entries), on a config.json nested 9,999 levels deep (runc's own limit is 10,000), and on one with 40,000
 * annotations (538 KiB, read in one pass), against the same container without them (for the annotations, plus what
 * runc itself spends on them, timed alone in the same run: runc reads them too, and takes longer than gpuctl) — with a gpuctl process per container, and through `gpuctl serve`. Time and peak memory (the
 * largest resident set among the processes, from GNU time; for the server, its own peak over its whole life,
 * warm-up and every case included); targets: under 1.5× a normal start, under 100 MB.
 * @module
 */
import { hugeCache, nestConfig } from "../tests/e2e/hostile.ts";
import { gpuctlEnvList } from "../tests/e2e/bundle.ts";
import { GPU_ENV, rig } from "./overhead.ts";
import { startServe } from "../tests/e2e/bundle.ts";

export interface HostileRow {
  name: string;
  ms: number;
  peakMiB: number;
  normalMs: number;
}

/** One run of `cmd` under GNU time: its wall time and peak RSS (KiB, the largest among its processes). */
async function once(cmd: string[], env: Record<string, string>): Promise<{ ms: number; peakKiB: number }> {
  const t0 = performance.now();
  const o = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "GPUCTL-PEAK %M", ...cmd],
    env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const ms = performance.now() - t0;
  const err = new TextDecoder().decode(o.stderr);
  if (!o.success) throw new Error(`${cmd.join(" ")}: ${err}`);
  return { ms, peakKiB: Number(/GPUCTL-PEAK (\d+)/.exec(err)?.[1] ?? 0) };
}

export async function hostileTable(tmp: string, bundleJs: string, runs: number): Promise<HostileRow[]> {
  const direct = await rig(tmp, bundleJs, "hostile");
  const served = await rig(tmp, bundleJs, "hostile-served");
  const server = await startServe(bundleJs, served.env, `${served.dir}/cache/serve`, { stderr: "inherit" });
  const cache = hugeCache(999_999);
  const rows: HostileRow[] = [];
  // What runc alone spends on 40,000 annotations: the same container without a GPU request, with and without them.
  const annotate = (b: string) => {
    const f = `${b}/config.orig.json`;
    const spec = JSON.parse(Deno.readTextFileSync(f));
    spec.annotations = Object.fromEntries(
      Array.from({ length: 40_000 }, (_, i) => [`tenant.example/key-${i}`, `value-${i}`]),
    );
    Deno.writeTextFileSync(f, JSON.stringify(spec, null, 1));
  };
  const runcAlone = [
    await direct.bundle("runc-plain", { args: ["/bin/true"] }),
    await direct.bundle("runc-ann", { args: ["/bin/true"] }),
  ];
  annotate(runcAlone[1]!);
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  for (const path of ["shim", "hook", "served shim", "served hook"] as const) {
    const r = path.startsWith("served") ? served : direct;
    const name = path.replace(" ", "-");
    const make = (n: string, prepare?: (rootfs: string) => void) =>
      r.bundle(`${name}-${n}`, {
        args: ["/bin/true"],
        env: GPU_ENV,
        ...(prepare ? { prepare } : {}),
        ...(path.endsWith("hook") ? { hook: { path: r.hook, env: gpuctlEnvList(r.config) } } : {}),
      });
    const cases = [
      { name: "normal GPU container", b: await make("normal") },
      {
        name: "24 MB image linker cache",
        b: await make("cache", (root) => Deno.writeFileSync(`${root}/etc/ld.so.cache`, cache)),
      },
      { name: "config.json nested 9,999 deep", b: await make("deep") },
      { name: "config.json with 40,000 annotations", b: await make("annotations") },
    ];
    nestConfig(`${cases[2]!.b}/config.orig.json`, 9_999);
    annotate(cases[3]!.b);
    const rt = path.endsWith("shim") ? r.front : "runc";
    // Interleaved, round by round, after one round that builds the snapshot; runc's own time on the annotations
    // in the same rounds, so that the VM's drift over a run moves both alike.
    const samples = cases.map(() => ({ ms: [] as number[], peak: 0 }));
    const alone = [[] as number[], [] as number[]];
    for (let round = 0; round <= runs; round++) {
      for (const [k, b] of runcAlone.entries()) {
        direct.freshRootfs(b);
        const s = await once(direct.lifecycle("runc", b), direct.env);
        if (round > 0) alone[k]!.push(s.ms);
      }
      for (const [k, c] of cases.entries()) {
        r.freshRootfs(c.b);
        const s = await once(r.lifecycle(rt, c.b), r.env);
        if (round === 0) continue;
        samples[k]!.ms.push(s.ms);
        samples[k]!.peak = Math.max(samples[k]!.peak, s.peakKiB);
      }
    }
    const normal = med(samples[0]!.ms);
    const runcExtra = med(alone[1]!) - med(alone[0]!);
    // The server's peak so far: its whole life, every case it has served included.
    const serverPeak = path.startsWith("served")
      ? Number(/VmHWM:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${server.pid}/status`))?.[1] ?? 0)
      : 0;
    for (const [k, c] of cases.entries()) {
      const runcOwn = k === 3 ? runcExtra : 0;
      rows.push({
        name: `${path}: ${c.name}${runcOwn ? ` (runc's own +${runcOwn.toFixed(0)} ms in normal)` : ""}`,
        ms: med(samples[k]!.ms),
        peakMiB: Math.max(samples[k]!.peak, serverPeak) / 1024,
        normalMs: normal + runcOwn,
      });
    }
  }
  await server.stop();
  return rows;
}

export function printHostile(rows: HostileRow[], runs: number): boolean {
  console.log(
    `\nHostile inputs, bounded (whole lifecycle, interleaved; ${runs} rounds, median time, largest peak RSS)`,
  );
  let all = true;
  for (const r of rows) {
    const ratio = r.ms / r.normalMs;
    const met = ratio < 1.5 && r.peakMiB < 100;
    all &&= met;
    console.log(
      `  ${r.name.padEnd(70)} ${r.ms.toFixed(1).padStart(7)}ms ${ratio.toFixed(2)}× normal  peak ${
        r.peakMiB.toFixed(0)
      } MiB  ${met ? "bounded" : "OVER (targets: <1.5× normal, <100 MiB)"}`,
    );
  }
  return all;
}
