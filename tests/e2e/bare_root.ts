/**
 * A bare host for the shipped artifact: a root directory holding only busybox, glibc (and the libgcc_s Deno
 * links), and the runc a host would have — no Deno, Node or npm anywhere — entered in new mount, network and
 * pid namespaces (so no network either), with its own /proc, a fresh /run and a minimal /dev, the host's cgroups,
 * and the fake driver at /fixture. What gpuctl writes there stays in the root directory, which the test made.
 * @module
 */
import type { FakeDriver } from "../fixtures/driver.ts";
import { RUNC } from "./privatens.ts";

export interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

/** The shared objects `exe` loads, as `ldd` names them (absolute paths). */
async function libsOf(exe: string): Promise<string[]> {
  const o = await new Deno.Command("ldd", { args: [exe], stdout: "piped", stderr: "null" }).output();
  return [...new TextDecoder().decode(o.stdout).matchAll(/(\/\S+\.so[.\d]*)/g)].map((m) => m[1]!);
}

/** Makes the bare host in `root`: busybox's applets, glibc and libgcc_s, runc, gpuctl's configuration. */
export async function makeBareRoot(root: string, d: FakeDriver): Promise<void> {
  for (
    const dir of [
      "bin",
      "sbin",
      "usr/bin",
      "usr/sbin",
      "usr/local/bin",
      "usr/local/lib",
      "lib/x86_64-linux-gnu",
      "lib64",
      "etc/gpuctl",
      "proc",
      "sys",
      "dev",
      "run",
      "root",
      "var/lib",
      "fixture",
      "bundles",
    ]
  ) Deno.mkdirSync(`${root}/${dir}`, { recursive: true });
  Deno.mkdirSync(`${root}/tmp`, { mode: 0o1777 });
  Deno.chmodSync(`${root}/tmp`, 0o1777);
  Deno.copyFileSync("/bin/busybox", `${root}/bin/busybox`);
  const applets = await new Deno.Command(`${root}/bin/busybox`, { args: ["--list"], stdout: "piped" })
    .output();
  for (
    const a of new TextDecoder().decode(applets.stdout).split("\n").filter((a) => /^[a-z0-9_.[-]+$/.test(a))
  ) {
    if (a === "busybox") continue;
    try {
      Deno.symlinkSync("/bin/busybox", `${root}/bin/${a}`);
    } catch { /* listed twice */ }
  }
  Deno.copyFileSync(RUNC, `${root}/usr/sbin/runc`);
  Deno.chmodSync(`${root}/usr/sbin/runc`, 0o755);
  const libs = new Set([
    ...await libsOf(RUNC),
    "/lib/x86_64-linux-gnu/libgcc_s.so.1",
    "/lib/x86_64-linux-gnu/libm.so.6",
  ]);
  for (const l of ["libdl.so.2", "librt.so.1", "libpthread.so.0"]) libs.add(`/lib/x86_64-linux-gnu/${l}`);
  for (const lib of libs) {
    const real = Deno.realPathSync(lib);
    const to = lib.startsWith("/lib64/")
      ? `${root}${lib}`
      : `${root}/lib/x86_64-linux-gnu/${lib.slice(lib.lastIndexOf("/") + 1)}`;
    Deno.copyFileSync(real, to);
  }
  Deno.writeTextFileSync(`${root}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\n");
  Deno.writeTextFileSync(`${root}/etc/group`, "root:x:0:\n");
  Deno.writeTextFileSync(`${root}/etc/ld.so.conf`, "/lib/x86_64-linux-gnu\n");
  const ldc = await new Deno.Command("ldconfig", { args: ["-r", root] }).output();
  if (!ldc.success) throw new Error("ldconfig -r failed");
  // The fake driver, where the bare host sees it.
  Deno.writeTextFileSync(
    `${root}/etc/gpuctl/config.jsonc`,
    JSON.stringify(
      {
        driverRoot: "/fixture/root",
        devRoot: "/fixture/dev",
        procRoot: "/fixture/proc",
        pluginsDir: "/fixture/plugins.d",
        runtimes: ["runc"],
      },
      null,
      2,
    ) + "\n",
  );
  void d;
}

/**
 * Runs `script` with /bin/sh in the bare host (root `root`, the fake driver `d` at /fixture). With `outside`, runs
 * that bash command instead, on this machine with the bare host's mounts in place (`$R` is the root): dpkg
 * --root, which runs the package's scripts in the bare host itself.
 */
export async function inBareRoot(
  root: string,
  d: FakeDriver,
  script: string,
  opts: { outside?: string } = {},
): Promise<Output> {
  // pivot_root, not chroot: runc needs the root to be a mount point.
  const enter = `set -e
R=$1 F=$2; shift 2
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount -t tmpfs -o mode=755 bare-run "$R/run"
mount -t tmpfs -o mode=755 bare-dev "$R/dev"
for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
  IFS=: read -r name ma mi <<EOF
$n
EOF
  mknod -m 666 "$R/dev/$name" c "$ma" "$mi"
done
mkdir "$R/dev/pts" "$R/dev/shm"
ln -s /proc/self/fd "$R/dev/fd"
mount --bind "$F" "$R/fixture"
mount -o remount,bind,ro "$R/fixture"
if [ -n "$2" ]; then eval "$2"; exit; fi
cd "$R"
mkdir -p .old-root
pivot_root . .old-root
exec /bin/busybox sh -c 'umount -l /.old-root && rmdir /.old-root && cd / && exec /bin/sh -c "$0"' "$1"`;
  const o = await new Deno.Command("unshare", {
    args: [
      "--mount",
      "--net",
      "--pid",
      "--fork",
      "--propagation",
      "private",
      "--",
      "bash",
      "-c",
      enter,
      "bare",
      root,
      d.dir,
      script,
      opts.outside ?? "",
    ],
    env: { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", HOME: "/root" },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(300_000),
  }).output();
  const dec = new TextDecoder();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

/** Every path under `root` (but the mount points, the bundles and /tmp) with its type, size and link target. */
export function rootListing(root: string, skip: string[] = []): string[] {
  const out: string[] = [];
  const ignore = new Set(["proc", "sys", "dev", "run", "tmp", "fixture", "bundles", ...skip]);
  const walk = (rel: string) => {
    for (const e of Deno.readDirSync(`${root}/${rel}`)) {
      const p = rel === "" ? e.name : `${rel}/${e.name}`;
      if (rel === "" && ignore.has(e.name)) continue;
      if (skip.some((s) => p === s || p.startsWith(`${s}/`))) continue;
      const info = Deno.lstatSync(`${root}/${p}`);
      out.push(
        `${p} ${e.isSymlink ? `-> ${Deno.readLinkSync(`${root}/${p}`)}` : e.isDirectory ? "dir" : info.size}`,
      );
      if (e.isDirectory) walk(p);
    }
  };
  walk("");
  return out.sort();
}
