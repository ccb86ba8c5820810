/**
 * The Kubernetes node installer (`deploy/kubernetes/node-installer.yaml`), its init container's script run as
 * the kubelet would run it: in an installer container (busybox, the artifact at /gpuctl, a stand-in /kubectl that
 * records its arguments) with the node's root at /host — a bare host (tests/e2e/bare_root.ts) whose `systemctl`
 * records what it is asked. It installs gpuctl from the artifact, configures containerd, restarts it, and labels
 * the node only when the driver answers.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "../assert.ts";
import { fakeDriver, standardSpec } from "../fixtures/driver.ts";
import { artifact, PROJECT, tempDir } from "../helpers.ts";
import { inBareRoot, makeBareRoot } from "./bare_root.ts";
import { parse } from "../../cdi/yaml.ts";

type Obj = Record<string, unknown>;

/** The init container's script, as the manifest has it. */
function installerScript(): string {
  const docs = Deno.readTextFileSync(`${PROJECT}/deploy/kubernetes/node-installer.yaml`).split(/^---$/m)
    .map((d) => parse(d) as Obj).filter((d) => d !== null);
  const ds = docs.find((d) => d.kind === "DaemonSet") as Obj;
  const init = ((ds.spec as Obj).template as Obj).spec as Obj;
  const command = (init.initContainers as Obj[])[0]!.command as string[];
  assertEquals(command.slice(0, 2), ["/bin/sh", "-ec"]);
  return command[2]!;
}

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

Deno.test({
  name:
    "the node installer's script: installs from the artifact, configures containerd, labels only a working node",
  ignore: Deno.uid() !== 0,
  fn: async (t) => {
    const d = await fakeDriver(standardSpec(2, { mig: false }));
    using tmp = tempDir();
    const script = installerScript();

    /** A node (bare host) and an installer container; runs the script; what the node and kubectl saw. */
    const run = async (name: string, config?: Obj) => {
      const host = `${tmp.path}/${name}/host`, inst = `${tmp.path}/${name}/installer`;
      await makeBareRoot(host, d);
      if (config) Deno.writeTextFileSync(`${host}/etc/gpuctl/config.jsonc`, JSON.stringify(config));
      Deno.mkdirSync(`${host}/var/log`, { recursive: true });
      Deno.writeTextFileSync(
        `${host}/usr/bin/systemctl`,
        '#!/bin/sh\necho "$*" >> /var/log/systemctl.calls\n',
        {
          mode: 0o755,
        },
      );
      for (const dir of ["bin", "host", "tmp"]) Deno.mkdirSync(`${inst}/${dir}`, { recursive: true });
      Deno.copyFileSync("/bin/busybox", `${inst}/bin/busybox`);
      for (const a of ["sh", "cp", "chmod", "chroot", "rm", "echo", "cat"]) {
        Deno.symlinkSync("busybox", `${inst}/bin/${a}`);
      }
      Deno.copyFileSync(artifact().exe, `${inst}/gpuctl`);
      Deno.chmodSync(`${inst}/gpuctl`, 0o755);
      Deno.writeTextFileSync(`${inst}/kubectl`, '#!/bin/sh\necho "$*" >> /kubectl.calls\n', { mode: 0o755 });
      const r = await inBareRoot(host, d, "true", {
        outside: `mount --rbind "$R" ${q(`${inst}/host`)}
mkdir -p ${q(`${inst}/dev`)} && mount --rbind "$R/dev" ${q(`${inst}/dev`)}
env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin NODE_NAME=gpu-node-1 /usr/sbin/chroot ${
          q(inst)
        } /bin/sh -ec ${q(script)}`,
      });
      const read = (p: string) => {
        try {
          return Deno.readTextFileSync(p);
        } catch {
          return "";
        }
      };
      return {
        r,
        host,
        kubectl: read(`${inst}/kubectl.calls`),
        systemctl: read(`${host}/var/log/systemctl.calls`),
      };
    };

    await t.step(
      "a node whose driver answers: installed, containerd configured and restarted, labelled",
      async () => {
        const n = await run("working");
        assertEquals(n.r.code, 0, n.r.stdout + n.r.stderr);
        assertMatch(
          Deno.readLinkSync(`${n.host}/usr/local/bin/gpuctl`),
          /^\/usr\/local\/lib\/gpuctl\/[^/]+\/gpuctl$/,
        );
        for (const f of ["gpuctl-runtime", "nvidia-container-runtime-hook"]) {
          assert(Deno.statSync(`${n.host}/usr/local/bin/${f}`).isFile, f);
        }
        assertStringIncludes(
          Deno.readTextFileSync(`${n.host}/etc/containerd/conf.d/99-gpuctl.toml`),
          'BinaryName = "/usr/local/bin/gpuctl-runtime"',
        );
        assertStringIncludes(Deno.readTextFileSync(`${n.host}/etc/containerd/config.toml`), "99-gpuctl.toml");
        assertEquals(n.systemctl, "restart containerd\n");
        assertEquals(n.kubectl, "label --overwrite node gpu-node-1 gpuctl.io/installed=true\n");
        assertEquals(
          [...Deno.readDirSync(`${n.host}/tmp`)].filter((e) => e.name.startsWith("gpuctl-installer")),
          [],
        );
        assertStringIncludes(n.r.stdout, "driver.kernel", "doctor's report is in the init container's log");
      },
    );

    await t.step(
      "a node whose driver does not answer: installed and configured, but not labelled",
      async () => {
        const n = await run("broken", { driverRoot: "/nonexistent", procRoot: "/nonexistent" });
        assertEquals(n.r.code, 0, n.r.stdout + n.r.stderr);
        assert(Deno.statSync(`${n.host}/usr/local/bin/gpuctl-runtime`).isFile);
        assertEquals(n.systemctl, "restart containerd\n");
        assertEquals(n.kubectl, "", "no label");
        assertStringIncludes(n.r.stderr, "gpuctl: ", "gpuctl info said why");
        assertEquals(n.r.stderr.includes("can't create"), false, n.r.stderr);
      },
    );
  },
});
