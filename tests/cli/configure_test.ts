/**
 * `gpuctl configure` on each input layout, pinned as golden files (the command's output and every file it leaves,
 * in `golden/configure/<case>.out`; `GPUCTL_UPDATE_GOLDEN=1` rewrites them). Each case also checks what no golden
 * file can: every written file parses (strict JSON for dockerd, TOML through the library), a second run changes
 * nothing, and `--remove` gives the user's file back byte for byte. Bad inputs get one line naming the file and the
 * fix, and are left untouched.
 */
import { assert, assertEquals, assertMatch } from "../assert.ts";
import { PROJECT, runGpuctl, tempDir } from "../helpers.ts";
import { parse as parseToml } from "smol-toml";

interface Case {
  name: string;
  engine: "docker" | "containerd" | "crio";
  /** Files before, by name in the case's directory (daemon.json, config.toml, conf.d/…, crio.conf.d/…). */
  files: Record<string, string>;
  args?: string[];
  /** A refusal: the one stderr line, as a pattern. */
  refused?: RegExp;
}

const RUNC_V2 = `version = 2
# Managed by ops: keep this comment
root = "/var/lib/containerd"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.example/pause:3.9"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = true
        NoPivotRoot = false
`;

const CASES: Case[] = [
  { name: "docker-no-file", engine: "docker", files: {} },
  {
    name: "docker-keeps-keys-and-indent",
    engine: "docker",
    files: {
      "daemon.json": `{
    "log-driver": "journald",
    "runtimes": {
        "other": { "path": "/usr/bin/other-runtime", "runtimeArgs": ["--debug"] },
        "gpu": { "path": "/old/gpuctl-runtime", "runtimeArgs": ["--systemd-cgroup"] }
    },
    "storage-driver": "overlay2"
}
`,
    },
  },
  {
    name: "docker-tabs-set-default",
    engine: "docker",
    files: { "daemon.json": '{\n\t"debug": true\n}\n' },
    args: ["--set-default"],
  },
  {
    name: "docker-comment-refused",
    engine: "docker",
    files: { "daemon.json": '{\n  // ops\n  "debug": true\n}\n' },
    refused:
      /^gpuctl: .*\/daemon\.json:2:3: not valid JSON \(InvalidCommentToken\); dockerd reads strict JSON and refuses comments: remove it, then run gpuctl configure docker again\n$/,
  },
  {
    name: "docker-trailing-comma-refused",
    engine: "docker",
    files: { "daemon.json": '{\n  "debug": true,\n}\n' },
    refused: /^gpuctl: .*\/daemon\.json:3:1: .*refuses trailing commas: remove the comma before it.*\n$/,
  },
  {
    name: "docker-runtimes-array-refused",
    engine: "docker",
    files: { "daemon.json": '{"runtimes": []}\n' },
    refused: /^gpuctl: .*\/daemon\.json: "runtimes": must be an object of runtime names.*\n$/,
  },
  { name: "containerd-no-file", engine: "containerd", files: {} },
  { name: "containerd-v2-runc-options", engine: "containerd", files: { "config.toml": RUNC_V2 } },
  {
    name: "containerd-v1-set-default-dotted-name",
    engine: "containerd",
    files: {
      "config.toml": `[plugins.cri.containerd]
  snapshotter = "overlayfs"
[plugins.cri.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins.cri.containerd.runtimes.runc.options]
  SystemdCgroup = true
`,
    },
    args: ["--set-default", "--name", "my.gpu"],
  },
  {
    name: "containerd-v3",
    engine: "containerd",
    files: {
      "config.toml": `version = 3
[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
  SystemdCgroup = true
`,
    },
  },
  {
    name: "containerd-existing-imports",
    engine: "containerd",
    files: {
      "config.toml": `version = 2
imports = [
  "conf.d/10-registry.toml", # mirrors
]
`,
      "conf.d/10-registry.toml": `version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
`,
    },
  },
  {
    name: "containerd-bad-toml-refused",
    engine: "containerd",
    files: { "config.toml": 'version = 2\n[plugins."io.containerd.grpc.v1.cri"\n' },
    refused:
      /^gpuctl: .*\/config\.toml:2:\d+: invalid TOML \(.*\); containerd would not start with it either: fix it first\n$/,
  },
  { name: "crio-drop-in", engine: "crio", files: {} },
  { name: "crio-set-default", engine: "crio", files: {}, args: ["--set-default"] },
  {
    name: "crio-foreign-file-refused",
    engine: "crio",
    files: { "crio.conf.d/99-gpuctl.conf": '[crio]\nlog_level = "info"\n' },
    refused: /^gpuctl: .*99-gpuctl\.conf: exists and was not written by gpuctl \(a full crio\.conf\?\).*\n$/,
  },
];

function paths(dir: string, engine: Case["engine"]): string[] {
  if (engine === "docker") return ["--config", `${dir}/daemon.json`];
  if (engine === "crio") return ["--config", `${dir}/crio.conf.d/99-gpuctl.conf`];
  return ["--config", `${dir}/config.toml`, "--drop-in", `${dir}/conf.d/99-gpuctl.toml`];
}

/** Every file under `dir`, as name → text. */
function tree(dir: string, prefix = ""): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of [...Deno.readDirSync(dir)].sort((a, b) => a.name.localeCompare(b.name))) {
    const rel = `${prefix}${e.name}`;
    if (e.isDirectory) Object.assign(out, tree(`${dir}/${e.name}`, `${rel}/`));
    else out[rel] = Deno.readTextFileSync(`${dir}/${e.name}`);
  }
  return out;
}

const UPDATE = Deno.env.get("GPUCTL_UPDATE_GOLDEN") === "1";

for (const c of CASES) {
  Deno.test(`configure ${c.name}`, async () => {
    using t = tempDir();
    for (const [name, text] of Object.entries(c.files)) {
      Deno.mkdirSync(`${t.path}/${name}`.replace(/\/[^/]*$/, ""), { recursive: true });
      Deno.writeTextFileSync(`${t.path}/${name}`, text);
    }
    const before = tree(t.path);
    const args = [
      "configure",
      c.engine,
      ...paths(t.path, c.engine),
      "--runtime-path",
      "/opt/gpuctl/gpuctl-runtime",
    ];
    const r = await runGpuctl([...args, ...(c.args ?? [])]);
    if (c.refused) {
      assertEquals(r.code, 1, r.stdout);
      assertMatch(r.stderr, c.refused);
      assertEquals(tree(t.path), before, "a refused file is left untouched");
      return;
    }
    assertEquals(r.code, 0, r.stderr);
    const after = tree(t.path);
    // What the engines read, read back by their parsers.
    for (const [name, text] of Object.entries(after)) {
      if (name.endsWith(".json")) JSON.parse(text);
      else if (!name.endsWith(".gpuctl-backup")) parseToml(text);
    }
    const golden = [
      r.stdout,
      ...Object.entries(after).map(([n, text]) => `==> ${n}\n${text}`),
    ].join("").replaceAll(t.path, "{{TMP}}");
    const file = `${PROJECT}/tests/cli/golden/configure/${c.name}.out`;
    if (UPDATE) {
      Deno.mkdirSync(`${PROJECT}/tests/cli/golden/configure`, { recursive: true });
      Deno.writeTextFileSync(file, golden);
    } else assertEquals(golden, Deno.readTextFileSync(file));
    // Idempotent.
    const again = await runGpuctl([...args, ...(c.args ?? [])]);
    assertMatch(again.stdout, /already configured.*nothing changed/);
    assertEquals(tree(t.path), after, "a second run changes nothing");
    // --remove: the user's files back, byte for byte; gpuctl's own gone.
    const removed = await runGpuctl([
      ...args,
      "--remove",
      ...(c.args ?? []).filter((a) => a !== "--set-default"),
    ]);
    assertEquals(removed.code, 0, removed.stderr);
    // Where gpuctl created daemon.json, --remove removes it (and the mark that says so): nothing is left.
    assertEquals(tree(t.path), before, "--remove restores what configure changed");
  });
}

Deno.test("configure: usage errors", async () => {
  const r = await runGpuctl(["configure", "podman"]);
  assertEquals(r.code, 2);
  assertEquals(
    r.stderr,
    "gpuctl: configure: name one engine: docker, containerd or crio (see 'gpuctl configure --help')\n",
  );
  const n = await runGpuctl(["configure", "docker", "--name", "a b", "--dry-run"]);
  assertEquals(n.code, 2);
  assert(n.stderr.includes("not a valid runtime name"));
});
