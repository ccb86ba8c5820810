/**
 * The gpuctl-runtime front (`serve/fronts/runtime.sh`) against the shim's own reading of runc's command line
 * (`scanRuncArgs`) and of a request (`readRequest`): for every argument form, every pass-through command goes
 * straight to the runtime, every create/run of a container that asks for a GPU goes to gpuctl (a miss is a
 * failure here), and a create/run whose config.json mentions no request goes to the runtime. Run by a real
 * `/bin/sh` (dash on Debian), with stand-ins for the runtime and for gpuctl.
 */
import { assert, assertEquals } from "../assert.ts";
import { runtimeFront } from "../../serve/fronts.ts";
import { scanRuncArgs } from "../../oci/runc_args.ts";
import { readRequest } from "../../request/request.ts";
import { parseSpec } from "../../oci/spec.ts";
import { defaultConfig } from "../../config/schema.ts";
import {
  asKind,
  clientFor,
  FRONT_KINDS,
  FRONT_LABEL,
  type FrontKind,
  tempDir,
  writeRuntimeFront,
} from "../helpers.ts";

const config = defaultConfig();

async function setup(dir: string, kind: FrontKind) {
  for (const who of ["runc", "gpuctl"]) {
    Deno.writeTextFileSync(`${dir}/${who}`, `#!/bin/sh\necho "${who} loop=\${GPUCTL_RUNTIME_EXEC-} $*"\n`, {
      mode: 0o755,
    });
  }
  const front = writeRuntimeFront(`${dir}/gpuctl-runtime`, {
    gpuctl: [`${dir}/gpuctl`],
    config: { ...config, runtimes: [`${dir}/runc`] },
    configFile: `${dir}/config.jsonc`,
    client: await clientFor(kind, dir, `${dir}/gpuctl`),
  });
  await asKind(kind, front, `${dir}/config.jsonc`);
  // Three bundles: one asking for a GPU, one without (markers nowhere), the working directory asking for one.
  const write = (b: string, env: string[], extra: Record<string, unknown> = {}) => {
    Deno.mkdirSync(b, { recursive: true });
    Deno.writeTextFileSync(
      `${b}/config.json`,
      JSON.stringify({ process: { env }, root: { path: "rootfs" }, ...extra }),
    );
  };
  write(`${dir}/gpu`, ["PATH=/bin", "NVIDIA_VISIBLE_DEVICES=0"]);
  write(`${dir}/plain`, ["PATH=/bin", "NVIDIA_DRIVER_CAPABILITIES=all"]);
  write(`${dir}/cwd`, ["NVIDIA_VISIBLE_DEVICES=all"]);
  return front;
}

/** What the shim decides for `args` run in `cwd`: the runtime, or gpuctl (a create/run asking for a GPU). */
function expected(args: string[], cwd: string): "runc" | "gpuctl" {
  // What NVIDIA's runtime answers itself, gpuctl answers too: `configure` (and `--version`, which the front
  // answers with a line of its own before runc's).
  if (args[0] === "configure") return "gpuctl";
  const r = scanRuncArgs(args, cwd);
  if (r.command !== "create" && r.command !== "run") return "runc";
  let text: string;
  try {
    text = Deno.readTextFileSync(`${r.bundle}/config.json`);
  } catch {
    return "gpuctl"; // the shim explains a missing config.json
  }
  return readRequest(parseSpec(text, "c"), config) === null ? "runc" : "gpuctl";
}

async function front(path: string, args: string[], cwd: string) {
  // Run as an engine runs it: the file itself (a sh front by its #!, a binary one as a program).
  const o = await new Deno.Command(path, {
    args,
    cwd,
    env: { GPUCTL_CONFIG: `${path.slice(0, path.lastIndexOf("/"))}/config.jsonc` },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const all = new TextDecoder().decode(o.stdout).trim();
  if (args.length === 1 && (args[0] === "--version" || args[0] === "-v")) {
    assert(all.startsWith("gpuctl-runtime version "), `${args[0]}: the front's own line first: ${all}`);
  }
  const out = all.slice(all.lastIndexOf("\n") + 1);
  return { who: out.split(" ")[0], args: out.split(" ").slice(2).join(" "), loop: out.split(" ")[1], out };
}

for (const kind of FRONT_KINDS) {
  Deno.test(`front: the shim's cases, each decided as the shim decides, with the arguments unchanged (${FRONT_LABEL[kind]})`, async () => {
    using t = tempDir();
    const f = await setup(t.path, kind);
    const g = `${t.path}/gpu`, p = `${t.path}/plain`, cwd = `${t.path}/cwd`;
    const cases: string[][] = [
      ["state", "c1"],
      ["start", "c1"],
      ["delete", "--force", "c1"],
      ["--version"],
      ["-v"],
      ["--version", "extra"],
      ["configure", "--runtime=docker"],
      ["features"],
      [
        "--root",
        "/r",
        "--log",
        "/l.json",
        "--log-format",
        "json",
        "create",
        "--bundle",
        g,
        "--pid-file",
        "/p",
        "c1",
      ],
      [
        "--root",
        "/r",
        "--log",
        "/l.json",
        "--log-format",
        "json",
        "create",
        "--bundle",
        p,
        "--pid-file",
        "/p",
        "c1",
      ],
      ["--root=/r", "--log=/l", "create", `--bundle=${g}`, "c1"],
      ["-root", "/r", "-log", "/l", "create", "-b", p, "c1"],
      ["-root=/r", "create", `-b=${g}`, "c1"],
      ["--systemd-cgroup", "--debug", "run", "-b", "../plain", "c1"],
      ["--systemd-cgroup", "--debug", "run", "-b", "../gpu", "c1"],
      ["--root", "create", "delete", "c1"],
      ["--root", "delete", "create", "c1"],
      ["create", "--console-socket", "/s", "--bundle", p, "c1"],
      ["create", "--pid-file", "--bundle", "c1"],
      ["create", "c1", "--bundle", p],
      ["create", "c1", "--", "--bundle", p],
      ["--", "create", "-b", p, "c1"],
      ["--log-format", "text", "--root", "/r"],
      ["create", "c1"],
      ["run", "--detach", "c1"],
      ["create", `--bundle=`, "c1"],
      ["create", "--bundle", p, "-b", g, "c1"],
      ["create", "--bundle", g, "-b"],
      ["-", "create", "--bundle", g],
      ["create", "-", "--bundle", g],
      ["create", "---bundle", g, "c1"],
      ["create", "--preserve-fds", "--bundle", "--bundle", p, "c1"],
      ["create", "--bundle", `${t.path}/missing`, "c1"],
    ];
    for (const args of cases) {
      const want = expected(args, cwd);
      const got = await front(f, args, cwd);
      assertEquals(got.who, want, `${args.join(" ")}: ${got.out}`);
      assertEquals(
        got.args,
        [...(want === "gpuctl" ? ["runtime"] : []), ...args].join(" "),
        "arguments unchanged",
      );
      if (want === "runc") {
        assertEquals(got.loop, `loop=${t.path}/runc`, "the runtime runs with the loop guard");
      }
    }
  });
}

for (const kind of FRONT_KINDS) {
  Deno.test(`front: random argument vectors, decided as the shim decides (a GPU request is never missed) (${FRONT_LABEL[kind]})`, async () => {
    using t = tempDir();
    const f = await setup(t.path, kind);
    const cwd = `${t.path}/cwd`;
    let seed = 42;
    const r = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
    const parts = [
      () => [
        pick(["--root", "-root", "--log", "-log", "--log-format", "--criu", "--rootless"]),
        pick(["/r", "x", "create", "-b"]),
      ],
      () => [pick(["--root=/r", "-log=/l", "--debug", "--systemd-cgroup", "-", "--"])],
    ];
    const cmd = () => [pick(["create", "run", "state", "start", "delete", "kill", "exec", "ps"])];
    const opts = () =>
      pick([
        () => [
          pick(["--bundle", "-b", "--bundle", "-b"]),
          pick([`${t.path}/gpu`, `${t.path}/plain`, "../gpu", "../plain", "."]),
        ],
        () => [pick([`--bundle=${t.path}/gpu`, `-b=${t.path}/plain`, "--bundle=../gpu", "-b=."])],
        () => [
          pick(["--pid-file", "--console-socket", "--preserve-fds", "--pidfd-socket"]),
          pick(["/p", "--bundle", "-b", "3"]),
        ],
        () => [pick(["--detach", "--no-pivot", "-d", "c1", "--", "-"])],
      ])();
    let gpuctl = 0;
    for (let i = 0; i < 300; i++) {
      const args = [
        ...Array.from({ length: Math.floor(r() * 3) }, () => pick(parts)()).flat(),
        ...cmd(),
        ...Array.from({ length: Math.floor(r() * 4) }, opts).flat(),
      ];
      const want = expected(args, cwd);
      const got = await front(f, args, cwd);
      assertEquals(got.who, want, `${args.join(" ")}: ${got.out}`);
      if (want === "gpuctl") gpuctl++;
    }
    assert(gpuctl > 30, `${gpuctl} cases went to gpuctl`);
  });
}

for (const kind of FRONT_KINDS) {
  Deno.test(`front: what sends a create to gpuctl, and what does not (${FRONT_LABEL[kind]})`, async () => {
    using t = tempDir();
    const f = await setup(t.path, kind);
    const b = `${t.path}/b`;
    Deno.mkdirSync(b);
    const go = async (spec: unknown) => {
      Deno.writeTextFileSync(`${b}/config.json`, typeof spec === "string" ? spec : JSON.stringify(spec));
      return (await front(f, ["create", "--bundle", b, "c1"], t.path)).who;
    };
    assertEquals(await go({ process: { env: ["PATH=/bin"] } }), "runc");
    assertEquals(await go({ process: { env: ["NVIDIA_VISIBLE_DEVICES=all"] } }), "gpuctl");
    assertEquals(
      await go({ process: { env: ["CUDA_VERSION=12.4"] } }),
      "gpuctl",
      "a legacy CUDA image asks for all",
    );
    assertEquals(await go({ annotations: { "cdi.k8s.io/gpu": "nvidia.com/gpu=0" } }), "gpuctl");
    assertEquals(
      await go({ mounts: [{ destination: "/var/run/nvidia-container-devices/0", source: "/dev/null" }] }),
      "gpuctl",
    );
    // A request spelled with JSON escapes is not missed: gpuctl reads the file.
    assertEquals(await go('{"process":{"env":["NVIDIA\\u005fVISIBLE_DEVICES=0"]}}'), "gpuctl");
    assertEquals(await go('{"annotations":{"cdi.k8s.io\\/x":"nvidia.com\\/gpu=0"}}'), "gpuctl");
    // Unreadable or absent: gpuctl says what is wrong.
    Deno.removeSync(`${b}/config.json`);
    assertEquals((await front(f, ["create", "--bundle", b, "c1"], t.path)).who, "gpuctl");
    // A loop (the runtime ran the front again): gpuctl explains it.
    const o = await new Deno.Command(f, {
      args: ["state", "c1"],
      env: { GPUCTL_RUNTIME_EXEC: "/x/runc" },
      stdout: "piped",
    }).output();
    assertEquals(new TextDecoder().decode(o.stdout).split(" ")[0], "gpuctl");
  });
}

Deno.test("front: runc's command, its global options and the container id, found as the shim finds them", async () => {
  // The front's own scan of the arguments, run alone: what it deletes a created container with when gpuctl serve
  // is gone before the /proc view (runc's global options, then `delete --force ID`) must be what runc was given.
  using t = tempDir();
  const text = runtimeFront({
    gpuctl: ["/bin/false"],
    version: "test",
    serve: null,
    config,
    configFile: "/nonexistent",
    hadConfig: false,
    self: "/nonexistent",
    grep: null,
  });
  const end = text.indexOf("\nruntime() {");
  assert(end > 0, "the front's scan ends before its runtime() function");
  const scan = `${t.path}/scan`;
  Deno.writeTextFileSync(scan, `${text.slice(0, end)}\nprintf '%s|%s|%s' "$cmd" "$gn" "$id"\n`);
  let seed = 7;
  const r = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
  const word = () =>
    pick([
      "--root",
      "/r",
      "--log=/l",
      "--debug",
      "-",
      "--",
      "create",
      "delete",
      "c1",
      "c2",
      "--bundle",
      "-b=/b",
      "--pid-file",
      "--preserve-fds",
      "3",
      "--force",
      "-d",
    ]);
  const cases: string[][] = [
    ["--root", "/r", "create", "--bundle", "/b", "--pid-file", "/p", "c1"],
    ["--root=/r", "--log", "/l", "--", "create", "c1"],
    ["create", "--", "c1"],
    ["create", "c1", "--", "c2"],
    ["create", "-", "c1"],
    ["create", "--bundle", "c1", "c2"],
    ...Array.from({ length: 300 }, () => Array.from({ length: 1 + Math.floor(r() * 8) }, word)),
  ];
  for (const args of cases) {
    const o = await new Deno.Command("/bin/sh", { args: [scan, ...args], stdout: "piped" }).output();
    const s = scanRuncArgs(args, "/cwd");
    const want = s.command === undefined ? "|0|" : `${s.command}|${s.globals.length}|${s.id ?? ""}`;
    assertEquals(new TextDecoder().decode(o.stdout), want, args.join(" "));
  }
});
