/**
 * A private containerd for tests: its own configuration, root, state and socket, and `ctr` against it. containerd
 * 1.6 keeps its shims' sockets in `/run/containerd/s`, runc's state in `/run/containerd/runc` and `ctr`'s FIFOs in
 * `/run/containerd/fifo` whatever its `--state` says, and its `opt` plugin makes `/opt/containerd`: the daemon and
 * every `ctr` run in mount namespaces of their own in which those paths are this instance's directories
 * (tests/e2e/privatens.ts), the same directories for all of them, so they meet there and the host's are never
 * touched.
 * @module
 */
import { privateMounts } from "./privatens.ts";

export interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

export class Containerd {
  private constructor(
    readonly dir: string,
    readonly sock: string,
    private readonly proc: Deno.ChildProcess,
  ) {}

  /** The namespace prefix every command of this instance runs under. */
  static ns(dir: string): string[] {
    return privateMounts({
      "/run/containerd": `${dir}/host/run-containerd`,
      "/opt/containerd": `${dir}/host/opt-containerd`,
    }, `${dir}/host/ns`);
  }

  /** Starts containerd with `config` (its main config.toml), root and state under `dir`; its log in `dir`. */
  static async start(dir: string, config: string): Promise<Containerd> {
    Deno.mkdirSync(dir, { recursive: true });
    const sock = `${dir}/containerd.sock`;
    const ns = Containerd.ns(dir);
    const proc = new Deno.Command(ns[0]!, {
      args: [
        ...ns.slice(1),
        "sh",
        "-c",
        'exec containerd "$@" 2>"$0"',
        `${dir}/containerd.log`,
        "--config",
        config,
        "--root",
        `${dir}/root`,
        "--state",
        `${dir}/state`,
        "--address",
        sock,
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const c = new Containerd(dir, sock, proc);
    for (let i = 0; i < 150; i++) {
      if ((await c.ctr(["version"], { check: false })).code === 0) return c;
      await new Promise((ok) => setTimeout(ok, 100));
    }
    await c.stop();
    throw new Error(`containerd did not start: ${c.log().slice(-2000)}`);
  }

  /** containerd's own log. */
  log(): string {
    try {
      return Deno.readTextFileSync(`${this.dir}/containerd.log`);
    } catch {
      return "";
    }
  }

  /** `ctr -a SOCK ARGS` in this instance's namespace; `check` (default) throws on failure. */
  async ctr(args: string[], o: { check?: boolean; stdin?: Uint8Array } = {}): Promise<Output> {
    const ns = Containerd.ns(this.dir);
    const child = new Deno.Command(ns[0]!, {
      args: [...ns.slice(1), "ctr", "-a", this.sock, ...args],
      stdin: o.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(120_000),
    }).spawn();
    if (o.stdin) {
      const w = child.stdin.getWriter();
      await w.write(o.stdin).then(() => w.close()).catch(() => {});
    }
    const out = await child.output();
    const dec = new TextDecoder();
    const r = { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
    if (o.check !== false && r.code !== 0) throw new Error(`ctr ${args.join(" ")} failed: ${r.stderr}`);
    return r;
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
  }
}
