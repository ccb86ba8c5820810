/**
 * A private Podman for tests: its own storage root and run root (vfs storage), no network, cgroupfs, events to a
 * file, runc by path (whatever runtime the host's Podman prefers: Debian's prefers crun once it is installed), and
 * the busybox+glibc test image imported from a tarball. Podman 4.3 reads CDI specs only from /etc/cdi and
 * /var/run/cdi, so every podman command runs in a mount namespace of its own where those two show this
 * instance's directories ({@link Podman.cdiDir}): the host's specs are not seen, and the test's are not left there.
 * @module
 */
import { makeBundle } from "./bundle.ts";
import { privateMounts, RUNC } from "./privatens.ts";

export class Podman {
  /** Where this Podman reads CDI specs (it sees it as /var/run/cdi; its /etc/cdi is empty). */
  readonly cdiDir: string;

  constructor(readonly dir: string) {
    Deno.mkdirSync(dir, { recursive: true });
    this.cdiDir = `${dir}/cdi/run`;
    Deno.mkdirSync(this.cdiDir, { recursive: true });
    Deno.writeTextFileSync(
      `${dir}/containers.conf`,
      '[engine]\nevents_logger = "file"\ncgroup_manager = "cgroupfs"\n[containers]\nnetns = "none"\n',
    );
  }

  /** `podman run --rm` as this machine needs it (no CAP_SYS_RESOURCE: rlimits no higher than the host's). */
  static readonly RUN = [
    "run",
    "--rm",
    "--network",
    "none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=4096:4096",
  ];

  /** This instance's global options: its roots. */
  get globals(): string[] {
    return [
      "--root",
      `${this.dir}/root`,
      "--runroot",
      `${this.dir}/run`,
      "--storage-driver",
      "vfs",
      "--runtime",
      RUNC,
    ];
  }

  /** The whole command line of `podman ARGS` for this instance, its private mount namespace included. */
  argv(args: string[]): string[] {
    // Podman and the runtimes it starts also keep locks and state under /run whatever its roots say.
    const ns = privateMounts({
      "/etc/cdi": `${this.dir}/cdi/etc`,
      "/var/run/cdi": this.cdiDir,
      "/run/containers": `${this.dir}/host/run-containers`,
      "/run/libpod": `${this.dir}/host/run-libpod`,
      "/run/runc": `${this.dir}/host/run-runc`,
      "/run/crun": `${this.dir}/host/run-crun`,
    }, `${this.dir}/ns`);
    return [...ns, "podman", ...this.globals, ...args];
  }

  /** The environment podman runs with. */
  get env(): Record<string, string> {
    return { CONTAINERS_CONF: `${this.dir}/containers.conf` };
  }

  /** Runs podman with this instance's roots; `check` (default) throws on failure. */
  async podman(args: string[], o: { check?: boolean; stdin?: Uint8Array } = {}) {
    const argv = this.argv(args);
    const child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      env: this.env,
      stdin: o.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(120_000),
    }).spawn();
    if (o.stdin) {
      const w = child.stdin.getWriter();
      // Podman may exit before reading it all: its stderr then says why.
      await w.write(o.stdin).then(() => w.close()).catch(() => {});
    }
    const out = await child.output();
    const dec = new TextDecoder();
    const r = { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
    if (o.check !== false && r.code !== 0) throw new Error(`podman ${args.join(" ")} failed: ${r.stderr}`);
    return r;
  }

  /** `podman run --rm` (see {@link Podman.RUN}). */
  run(args: string[], check = true) {
    return this.podman([...Podman.RUN, ...args], { check });
  }

  async importImage(image: string): Promise<void> {
    await makeBundle(`${this.dir}/image`, { debian: true, args: ["/bin/sh"] });
    const tar = await new Deno.Command("tar", {
      args: ["-C", `${this.dir}/image/rootfs`, "-c", "."],
      stdout: "piped",
    })
      .output();
    await this.podman(["import", "-", image], { stdin: tar.stdout });
  }

  async cleanup(): Promise<void> {
    await this.podman(["rm", "--all", "--force"], { check: false });
    await this.podman(["system", "reset", "--force"], { check: false });
    const left = Deno.readTextFileSync("/proc/self/mountinfo").split("\n").map((l) => l.split(" ")[4] ?? "")
      .filter((p) => p.startsWith(this.dir)).sort().reverse();
    for (const p of left) await new Deno.Command("umount", { args: ["-l", p], stderr: "null" }).output();
    Deno.removeSync(this.dir, { recursive: true });
  }
}
