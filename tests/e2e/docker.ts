/**
 * A private dockerd for tests: its own data root, exec root and socket, no iptables and no bridge, the runtime's
 * hook launcher on its PATH, and a busybox+glibc image imported from a test rootfs. Stopped and removed by
 * {@link Dockerd.stop}.
 *
 * It runs in a mount namespace of its own (tests/e2e/privatens.ts) where `/etc/docker` (its key.json and a
 * host's daemon.json), `/run/docker`, `/run/containerd` (so it starts a containerd of its own instead of using a
 * host's, whose shims keep sockets there) and `/opt/containerd` are this instance's directories. The client
 * reads its configuration from this instance's directory too.
 * @module
 */
import { makeBundle } from "./bundle.ts";
import { privateMounts } from "./privatens.ts";

export class Dockerd {
  private constructor(
    readonly dir: string,
    readonly sock: string,
    private readonly proc: Deno.ChildProcess,
  ) {}

  /** Starts dockerd with `env` added to its environment and `pathDirs` in front of its PATH. */
  static async start(
    dir: string,
    opts: { env?: Record<string, string>; pathDirs?: string[]; args?: string[] } = {},
  ): Promise<Dockerd> {
    const sock = `${dir}/docker.sock`;
    const ns = `gpuctl-test-${Deno.pid}`;
    const args = [
      "--iptables=false",
      "--ip-forward=false",
      "--ip-masq=false",
      "--bridge=none",
      "--data-root",
      `${dir}/data`,
      "--exec-root",
      `${dir}/exec`,
      "--pidfile",
      `${dir}/dockerd.pid`,
      "-H",
      `unix://${sock}`,
      "--containerd-namespace",
      ns,
      "--containerd-plugins-namespace",
      `${ns}-plugins`,
      ...(opts.args ?? []),
    ];
    const host = privateMounts({
      "/etc/docker": `${dir}/host/etc-docker`,
      "/run/docker": `${dir}/host/run-docker`,
      "/run/containerd": `${dir}/host/run-containerd`,
      "/opt/containerd": `${dir}/host/opt-containerd`,
    }, `${dir}/host/ns`);
    // Through sh, so that dockerd's log goes to a file.
    const proc = new Deno.Command(host[0]!, {
      args: [...host.slice(1), "sh", "-c", 'exec dockerd "$@" 2>"$0"', `${dir}/dockerd.log`, ...args],
      env: {
        ...opts.env,
        PATH: [
          ...(opts.pathDirs ?? []),
          "/usr/local/sbin",
          "/usr/local/bin",
          "/usr/sbin",
          "/usr/bin",
          "/sbin",
          "/bin",
        ].join(":"),
      },
      stdout: "null",
      stderr: "null",
    }).spawn();
    const d = new Dockerd(dir, sock, proc);
    for (let i = 0; i < 150; i++) {
      const r = await d.docker(["version", "--format", "{{.Server.Version}}"], { check: false });
      if (r.code === 0) return d;
      await new Promise((ok) => setTimeout(ok, 200));
    }
    await d.stop();
    throw new Error(`dockerd did not start: ${Deno.readTextFileSync(`${dir}/dockerd.log`).slice(-2000)}`);
  }

  /**
   * The command prefix that runs a program in this dockerd's mount namespace, where its containers' root file
   * systems are mounted (`gpuctl serve` lives there, as it lives beside the engine on a host).
   */
  get enter(): string[] {
    return ["nsenter", `--mount=/proc/${this.proc.pid}/ns/mnt`, "--"];
  }

  /** Runs the docker client against this daemon. */
  async docker(args: string[], o: { check?: boolean; stdin?: Uint8Array; timeoutMs?: number } = {}) {
    const child = new Deno.Command("docker", {
      args: ["-H", `unix://${this.sock}`, ...args],
      env: { DOCKER_CONFIG: `${this.dir}/host/client` },
      stdin: o.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(o.timeoutMs ?? 120_000),
    }).spawn();
    if (o.stdin) {
      const w = child.stdin.getWriter();
      await w.write(o.stdin);
      await w.close();
    }
    const out = await child.output();
    const dec = new TextDecoder();
    const r = { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
    if (o.check !== false && r.code !== 0) throw new Error(`docker ${args.join(" ")} failed: ${r.stderr}`);
    return r;
  }

  /** Imports a test rootfs (busybox, glibc, the NVML probe) as `image`. */
  async importImage(image: string): Promise<void> {
    await makeBundle(`${this.dir}/image`, { debian: true, args: ["/bin/sh"] });
    const tar = await new Deno.Command("tar", {
      args: ["-C", `${this.dir}/image/rootfs`, "-c", "."],
      stdout: "piped",
    }).output();
    await this.docker(["import", "-", image], { stdin: tar.stdout });
  }

  async stop(): Promise<void> {
    try {
      this.proc.kill("SIGTERM");
    } catch { /* already gone */ }
    const done = await Promise.race([
      this.proc.status,
      new Promise((ok) => setTimeout(() => ok(null), 15_000)),
    ]);
    if (done === null) {
      this.proc.kill("SIGKILL");
      await this.proc.status;
    }
    // dockerd unmounts its layers on shutdown; anything left is unmounted before removal.
    const left = Deno.readTextFileSync("/proc/self/mountinfo").split("\n").map((l) => l.split(" ")[4] ?? "")
      .filter((p) => p.startsWith(this.dir)).sort().reverse();
    for (const p of left) await new Deno.Command("umount", { args: ["-l", p], stderr: "null" }).output();
  }
}
