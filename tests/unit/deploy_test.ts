/**
 * deploy/kubernetes: the manifests parse (the npm yaml package) and carry the fields the API server requires; the
 * RuntimeClass's handler is the name `gpuctl configure` registers; the installer runs the commands the README
 * describes.
 */
import { assert, assertEquals } from "../assert.ts";
import { parseAllDocuments } from "../../cdi/yaml.ts";
import { PROJECT } from "../helpers.ts";

type Obj = Record<string, unknown>;
const get = (o: unknown, path: string): unknown =>
  path.split(".").reduce<unknown>((x, k) => (x as Obj | undefined)?.[k], o);

function load(name: string): Obj[] {
  const docs = parseAllDocuments(Deno.readTextFileSync(`${PROJECT}/deploy/kubernetes/${name}`));
  for (const d of docs) assertEquals(d.errors, [], `${name}: ${d.errors.join("; ")}`);
  const objs = docs.map((d) => d.toJS() as Obj);
  for (const o of objs) {
    for (const f of ["apiVersion", "kind", "metadata.name"]) {
      assert(typeof get(o, f) === "string" && get(o, f) !== "", `${name}: ${String(o.kind)} needs ${f}`);
    }
    assert(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(get(o, "metadata.name") as string), "a DNS-1123 name");
  }
  return objs;
}

Deno.test("deploy/kubernetes/runtimeclass.yaml: node.k8s.io/v1 RuntimeClass, handler nvidia", () => {
  const [rc, pod] = load("runtimeclass.yaml");
  assertEquals([rc!.apiVersion, rc!.kind, rc!.handler], ["node.k8s.io/v1", "RuntimeClass", "nvidia"]);
  assertEquals(get(pod, "spec.runtimeClassName"), get(rc, "metadata.name"));
  const containers = get(pod, "spec.containers") as Obj[];
  assert(containers.every((c) => typeof c.name === "string" && typeof c.image === "string"));
});

Deno.test("deploy/kubernetes/node-installer.yaml: a DaemonSet whose selector matches its pods, mounts that exist, the install commands", () => {
  const objs = load("node-installer.yaml");
  const kinds = objs.map((o) => `${o.apiVersion} ${o.kind}`);
  assertEquals(kinds, [
    "v1 Namespace",
    "v1 ServiceAccount",
    "rbac.authorization.k8s.io/v1 ClusterRole",
    "rbac.authorization.k8s.io/v1 ClusterRoleBinding",
    "apps/v1 DaemonSet",
  ]);
  const ds = objs[4]!;
  const selector = get(ds, "spec.selector.matchLabels") as Obj;
  const labels = get(ds, "spec.template.metadata.labels") as Obj;
  assert(Object.keys(selector).length > 0);
  for (const [k, v] of Object.entries(selector)) assertEquals(labels[k], v, "the selector matches the pods");
  const spec = get(ds, "spec.template.spec") as Obj;
  assertEquals(spec.serviceAccountName, get(objs[1], "metadata.name"));
  const volumes = new Set((spec.volumes as Obj[]).map((v) => v.name));
  const containers = [...(spec.initContainers as Obj[]), ...(spec.containers as Obj[])];
  for (const c of containers) {
    assert(typeof c.name === "string" && typeof c.image === "string", "containers need name and image");
    for (const m of (c.volumeMounts ?? []) as Obj[]) {
      assert(volumes.has(m.name), `volume ${m.name} is declared`);
    }
  }
  for (const v of spec.volumes as Obj[]) {
    const p = get(v, "hostPath.path");
    assert(p === undefined || (typeof p === "string" && p.startsWith("/")));
  }
  const script = ((spec.initContainers as Obj[])[0]!.command as string[]).join("\n");
  for (const step of ["gpuctl install", "gpuctl configure containerd", "systemctl restart containerd"]) {
    assert(script.includes(step), `the installer runs ${step}`);
  }
  const rb = objs[3]!;
  assertEquals(get(rb, "roleRef.name"), get(objs[2], "metadata.name"));
});

Deno.test("deploy/kubernetes/Dockerfile: known instructions, and the image holds what the installer's script runs", () => {
  const text = Deno.readTextFileSync(`${PROJECT}/deploy/kubernetes/Dockerfile`);
  const lines = text.split("\n").filter((l) => l.trim() !== "" && !l.trimStart().startsWith("#"));
  const known = new Set([
    "FROM",
    "COPY",
    "RUN",
    "ENTRYPOINT",
    "CMD",
    "ENV",
    "LABEL",
    "WORKDIR",
    "USER",
    "ARG",
  ]);
  for (const l of lines) assert(known.has(l.split(/\s+/)[0]!), `an instruction Docker knows: ${l}`);
  const copies = lines.filter((l) => l.startsWith("COPY ")).map((l) => l.split(/\s+/).slice(-2));
  const stages = lines.filter((l) => l.startsWith("FROM ")).map((l) => / AS (\S+)$/i.exec(l)?.[1]).filter((
    s,
  ) => s);
  for (const l of lines.filter((l) => l.startsWith("COPY --from="))) {
    assert(stages.includes(/--from=(\S+)/.exec(l)![1]!), `${l}: a stage of this file`);
  }
  // Files copied from the build context are what `deno task dist` writes.
  for (const l of lines.filter((l) => l.startsWith("COPY ") && !l.includes("--from="))) {
    assertEquals(l.split(/\s+/)[1], "dist/gpuctl", "the artifact deno task dist builds");
  }
  const inImage = new Set(copies.map(([, to]) => to!));
  const ds = load("node-installer.yaml")[4]!;
  const script = ((get(ds, "spec.template.spec.initContainers") as Obj[])[0]!.command as string[]).join("\n");
  for (const p of ["/gpuctl", "/kubectl"]) {
    assert(script.includes(p), `the script uses ${p}`);
    assert(inImage.has(p), `the image has ${p}`);
  }
});
