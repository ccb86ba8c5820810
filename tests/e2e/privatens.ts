/**
 * Real components that read or write fixed host paths — Podman 4.3's CDI directories (`/etc/cdi`,
 * `/var/run/cdi`: it has no setting for them), containerd's `/run/containerd/{s,fifo,runc}`, dockerd's
 * `/etc/docker/key.json` — run in a mount namespace of their own, in which each of those paths shows a directory
 * the test made. The host's paths are neither read nor written.
 *
 * A path that does not exist on the host is not created there: its nearest existing ancestor is covered, in the
 * namespace only, by an overlay whose writable layer is in the test's directory, and the path is made in that.
 * @module
 */

/** Where each fixed host path (key) should show a test's directory (value). */
export type Binds = Record<string, string>;

// First every overlay, then every bind (an overlay hides the mounts below the directory it covers). One overlay
// per covered directory (overlays stacked on one another soon exceed the kernel's depth); a missing path under a
// directory already covered is made in that overlay.
const SCRIPT = `set -e
scratch=$1; shift
covered=
overlays() {
  while [ "$1" != -- ]; do
    dst=$1; shift 2
    [ ! -d "$dst" ] || continue
    p=\${dst%/*}
    while [ -n "$p" ] && [ ! -d "$p" ]; do p=\${p%/*}; done
    [ -n "$p" ] || p=/
    inside=
    for c in $covered; do case "$p/" in "$c"/*) inside=1 ;; esac; done
    if [ -z "$inside" ]; then
      o=$(mktemp -d "$scratch/overlay.XXXXXX")
      mkdir "$o/upper" "$o/work"
      mount -t overlay overlay -o "lowerdir=$p,upperdir=$o/upper,workdir=$o/work" "$p"
      covered="$covered $p"
    fi
    mkdir -p "$dst"
  done
}
binds() {
  while [ "$1" != -- ]; do mount --bind "$2" "$1"; shift 2; done
}
overlays "$@"
binds "$@"
while [ "$1" != -- ]; do shift 2; done
shift
exec "$@"`;

/** `path` with every existing leading component's symlinks resolved (`/var/run/cdi` → `/run/cdi`). */
export function canonical(path: string): string {
  const tail: string[] = [];
  let head = path.replace(/\/+$/, "") || "/";
  for (;;) {
    try {
      const real = Deno.realPathSync(head);
      return [real === "/" ? "" : real, ...tail].join("/") || "/";
    } catch {
      const i = head.lastIndexOf("/");
      tail.unshift(head.slice(i + 1));
      head = head.slice(0, i) || "/";
    }
  }
}

/**
 * The command prefix that runs a program in a new, private mount namespace with `binds` in place; overlays go
 * under `scratch` (a directory of the test's). Append the program and its arguments.
 */
export function privateMounts(binds: Binds, scratch: string): string[] {
  Deno.mkdirSync(scratch, { recursive: true });
  const pairs: string[] = [];
  for (const [dst, src] of Object.entries(binds)) {
    Deno.mkdirSync(src, { recursive: true });
    pairs.push(canonical(dst), src);
  }
  return [
    "unshare",
    "--mount",
    "--propagation",
    "private",
    "--",
    "sh",
    "-c",
    SCRIPT,
    "privatens",
    scratch,
    ...pairs,
    "--",
  ];
}

/** The runc the tests mean, by path: `$GPUCTL_TEST_RUNC`, else the first `runc` on PATH. */
export const RUNC: string = (() => {
  const given = Deno.env.get("GPUCTL_TEST_RUNC");
  if (given) return given;
  for (const d of (Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":")) {
    try {
      if (Deno.statSync(`${d}/runc`).isFile) return `${d}/runc`;
    } catch { /* not here */ }
  }
  for (const d of ["/usr/sbin", "/usr/bin", "/sbin", "/usr/local/sbin", "/usr/local/bin"]) {
    try {
      if (Deno.statSync(`${d}/runc`).isFile) return `${d}/runc`;
    } catch { /* not here */ }
  }
  return "runc";
})();
