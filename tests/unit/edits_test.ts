/**
 * One plan, three renderings: config.json and the rootfs (the shim), a CDI spec (gpuctl cdi generate, resolved
 * as an engine resolves it), and the edits the hooks apply. Each rendering is read back into the same canonical
 * set of edits, so they cannot drift apart.
 */
import { assertEquals } from "../assert.ts";
import { type ContainerEdits, containerEdits, MULTIARCH } from "../../edits/edits.ts";
import { preparePlan } from "../../flows/prepare.ts";
import { parseConfig } from "../../config/config.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { applyToSpec, prepareRootfs } from "../../apply/spec.ts";
import { parseSpec } from "../../oci/spec.ts";
import { InRoot } from "../../apply/inroot.ts";
import { parseLdCache } from "../../driver/ldcache.ts";
import { specFromPlan } from "../../flows/cdi_generate.ts";
import { resolveCdi } from "../../cdi/resolve.ts";
import { cdiToContainerEdits } from "../../edits/from_cdi.ts";
import { nullLogger } from "../../log/log.ts";
import { tempDir } from "../helpers.ts";

/** Edits as sorted lines, by kind: what a container gets, however it is rendered. */
function canonical({ spec: e, inside: i }: ContainerEdits) {
  return {
    nodes: e.deviceNodes.map((n) =>
      `${n.path} c ${n.major}:${n.minor} ${n.fileMode.toString(8)} ${n.uid}:${n.gid}`
    ).sort(),
    mounts: e.mounts.map((m) =>
      `${m.containerPath} <- ${m.hostPath} [${[...m.options].sort()}]${m.dir ? " dir" : ""}`
    )
      .sort(),
    links: i.symlinks.map((s) => `${s.path} -> ${s.target}`).sort(),
    ldcache: i.ldcache.map((l) => `${l.soname} ${l.path} ${l.bits}`).sort(),
    proc: (i.procView?.gpus ?? []).map((g) => `${g.name} ${g.minor}`).sort(),
  };
}

async function plan(caps: string) {
  const d = await fakeDriver(standardSpec(2));
  const config = parseConfig(fixtureConfig(d), "test");
  return {
    d,
    config,
    plan: (await preparePlan(config, { devices: { kind: "all" }, capabilities: caps })).plan,
  };
}

for (const caps of ["utility,compute", "all"]) {
  Deno.test(`edits: the shim's rendering (config.json and the rootfs) gives back the plan's edits [${caps}]`, async () => {
    const { plan: p } = await plan(caps);
    const edits = containerEdits(p, MULTIARCH);
    using tmp = tempDir();
    Deno.mkdirSync(`${tmp.path}/rootfs/etc`, { recursive: true });
    const text = JSON.stringify({
      ociVersion: "1.2.0",
      process: { env: ["PATH=/bin"] },
      root: { path: "rootfs" },
    });
    const out = JSON.parse(applyToSpec(text, parseSpec(text, "config.json"), edits.spec));
    const root = InRoot.open(`${tmp.path}/rootfs`);
    try {
      prepareRootfs(root, edits, false, nullLogger);
    } finally {
      root.close();
    }
    const dirs = [MULTIARCH.lib, MULTIARCH.lib32];
    const links = dirs.flatMap((d) => {
      try {
        return [...Deno.readDirSync(`${tmp.path}/rootfs${d}`)].filter((e) => e.isSymlink).map((e) => ({
          path: `${d}/${e.name}`,
          target: Deno.readLinkSync(`${tmp.path}/rootfs${d}/${e.name}`),
        }));
      } catch {
        return [];
      }
    });
    const cache = parseLdCache(Deno.readFileSync(`${tmp.path}/rootfs/etc/ld.so.cache`));
    const rendered: ContainerEdits = {
      spec: {
        deviceNodes: out.linux.devices.map((n: Record<string, number | string>) => ({
          path: n.path,
          hostPath: null,
          major: n.major,
          minor: n.minor,
          fileMode: n.fileMode,
          uid: n.uid,
          gid: n.gid,
        })),
        mounts: [],
        env: [],
      },
      inside: {
        driverVersion: "",
        procView: edits.inside.procView,
        symlinks: links,
        ldcache: cache.map((e) => ({
          soname: e.soname,
          path: e.path,
          bits: e.is64 ? 64 as const : 32 as const,
        })),
      },
    };
    rendered.spec.mounts = out.mounts.map((
      m: { destination: string; source: string; options: string[] },
    ) => ({
      hostPath: m.source,
      containerPath: m.destination,
      options: m.options.filter((o) => o !== "rbind" && o !== "rprivate"),
      dir: Deno.statSync(`${tmp.path}/rootfs${m.destination}`).isDirectory,
    }));
    assertEquals(canonical(rendered), canonical(edits));
    // Each node has its device-cgroup rule.
    assertEquals(
      out.linux.resources.devices.map((r: { major: number; minor: number }) => `${r.major}:${r.minor}`)
        .sort(),
      edits.spec.deviceNodes.map((n) => `${n.major}:${n.minor}`).sort(),
    );
  });

  Deno.test(`edits: the CDI spec, resolved for every device as an engine does, gives back the plan's edits [${caps}]`, async () => {
    const { config, plan: p } = await plan(caps);
    const edits = containerEdits(p, MULTIARCH);
    const spec = specFromPlan(p, {
      vendor: "example.com",
      class: "gpu",
      strategies: ["index", "uuid"],
      capabilities: caps,
      hook: {
        path: "/usr/local/bin/gpuctl",
        argv: ["gpuctl", "hook", "container-edits"],
        env: ["PATH=/bin"],
      },
      cudaCompat: true,
    });
    using tmp = tempDir();
    Deno.writeTextFileSync(`${tmp.path}/spec.json`, JSON.stringify(spec));
    const resolved = cdiToContainerEdits(resolveCdi([tmp.path], ["example.com/gpu=all"]), config.procRoot);
    assertEquals(canonical(resolved), canonical(edits));
    // One GPU: its node, the common ones, and only its /proc directory.
    const one = cdiToContainerEdits(resolveCdi([tmp.path], ["example.com/gpu=0"]), config.procRoot);
    assertEquals(canonical(one).proc, ["0000:10:00.0 0"]);
    assertEquals(one.spec.deviceNodes.filter((n) => /^\/dev\/nvidia\d+$/.test(n.path)).map((n) => n.path), [
      "/dev/nvidia0",
    ]);
  });
}
