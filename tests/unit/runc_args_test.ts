import { assertEquals } from "../assert.ts";
import { findRuntime, runcLogLine, scanRuncArgs } from "../../oci/runc_args.ts";
import { tempDir } from "../helpers.ts";

Deno.test("scanRuncArgs: the command, the bundle and the log, in every spelling Go's flag package accepts", () => {
  const cwd = "/run/containerd/b1";
  const cases: [
    string[],
    { command: string | undefined; bundle: string; log?: string; logFormat?: string },
  ][] = [
    [["state", "c1"], { command: "state", bundle: cwd }],
    [
      [
        "--root",
        "/r",
        "--log",
        "/l.json",
        "--log-format",
        "json",
        "create",
        "--bundle",
        "/b",
        "--pid-file",
        "/p",
        "c1",
      ],
      { command: "create", bundle: "/b", log: "/l.json", logFormat: "json" },
    ],
    [["--root=/r", "--log=/l", "create", "--bundle=/b", "c1"], {
      command: "create",
      bundle: "/b",
      log: "/l",
    }],
    [["-root", "/r", "-log", "/l", "create", "-b", "/b", "c1"], {
      command: "create",
      bundle: "/b",
      log: "/l",
    }],
    [["-root=/r", "create", "-b=/b", "c1"], { command: "create", bundle: "/b" }],
    [["--systemd-cgroup", "--debug", "run", "-b", "rel/b", "c1"], { command: "run", bundle: `${cwd}/rel/b` }],
    // A value that looks like a command, and a flag's value that looks like a flag.
    [["--root", "create", "delete", "c1"], { command: "delete", bundle: cwd }],
    [["create", "--console-socket", "/s", "--bundle", "/b", "c1"], { command: "create", bundle: "/b" }],
    [["create", "--pid-file", "--bundle", "c1"], { command: "create", bundle: cwd }],
    // Flags after the id (runc reorders them), and nothing after `--`.
    [["create", "c1", "--bundle", "/b"], { command: "create", bundle: "/b" }],
    [["create", "c1", "--", "--bundle", "/x"], { command: "create", bundle: cwd }],
    [["--", "create", "-b", "/b", "c1"], { command: "create", bundle: "/b" }],
    [["--log-format", "text", "--root", "/r"], { command: undefined, bundle: cwd }],
  ];
  for (const [args, want] of cases) {
    const got = scanRuncArgs(args, cwd);
    assertEquals(
      { command: got.command, bundle: got.bundle, log: got.log, logFormat: got.logFormat },
      { log: undefined, logFormat: "text", ...want },
      args.join(" "),
    );
  }
});

Deno.test("findRuntime: the first executable, PATH first, never a directory, a non-executable file or itself", () => {
  using d = tempDir();
  const mk = (rel: string, mode: number) => {
    Deno.mkdirSync(`${d.path}/${rel}`.replace(/\/[^/]+$/, ""), { recursive: true });
    Deno.writeTextFileSync(`${d.path}/${rel}`, "#!/bin/sh\n", { mode });
    Deno.chmodSync(`${d.path}/${rel}`, mode);
  };
  Deno.mkdirSync(`${d.path}/a/runc`, { recursive: true }); // a directory: searchable, not a program
  mk("b/runc", 0o644); // not executable
  mk("c/runc", 0o755);
  mk("d/runc", 0o755);
  mk("d/crun", 0o755);
  Deno.symlinkSync(`${d.path}/c/runc`, `${d.path}/e-runc`);
  const path = ["a", "b", "c", "d"].map((x) => `${d.path}/${x}`).join(":");
  assertEquals(findRuntime(["runc", "crun"], path, () => null), `${d.path}/c/runc`);
  // The shim itself (here c/runc) is skipped, reached directly or through a link.
  assertEquals(
    findRuntime(["runc", "crun"], path, () => Deno.realPathSync(`${d.path}/e-runc`)),
    `${d.path}/d/runc`,
  );
  assertEquals(findRuntime(["runc"], path, () => Deno.realPathSync(`${d.path}/c/runc`)), `${d.path}/d/runc`);
  assertEquals(findRuntime(["crun", "runc"], path, () => null), `${d.path}/d/crun`);
  assertEquals(findRuntime([`${d.path}/e-runc`], "", () => null), `${d.path}/e-runc`);
  assertEquals(findRuntime([`${d.path}/b/runc`, `${d.path}/a/runc`], "", () => null), null);
  assertEquals(findRuntime(["gpuctl-no-such-runtime"], path, () => null), null);
  // Relative PATH entries are never searched (here they would find c/runc from the working directory).
  const cwd = Deno.cwd();
  Deno.chdir(d.path);
  try {
    const found = findRuntime(["runc"], "c:d", () => null);
    assertEquals(found === null || found.startsWith("/"), true, String(found));
  } finally {
    Deno.chdir(cwd);
  }
});

Deno.test("runcLogLine: runc's text and JSON log formats", () => {
  const now = new Date("2026-01-02T03:04:05.000Z");
  assertEquals(
    runcLogLine("text", "error", 'gpuctl: bad "x"', now),
    'time="2026-01-02T03:04:05.000Z" level=error msg="gpuctl: bad \\"x\\""\n',
  );
  assertEquals(
    JSON.parse(runcLogLine("json", "error", "gpuctl: bad", now)),
    { level: "error", msg: "gpuctl: bad", time: "2026-01-02T03:04:05.000Z" },
  );
});
