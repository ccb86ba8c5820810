/**
 * `deno task dist`: what a host gets, built from this checkout with no network beyond the npm packages already
 * pinned. In `dist/`:
 *
 * - `gpuctl.js`: the bundle (`deno bundle`, the flags of deno.json's "bundle" task), stamped with the commit and
 *   date it was built from (version.ts), its hot functions written for V8 to compile up front (tools/pack/eager.ts);
 * - `gpuctl`: the one executable file. Where Deno's `denort` is at hand (`DENORT_BIN`, or `deno compile` can
 *   download it) it is `deno compile`'s output; elsewhere it is packed: tools/pack/launcher.c (built here with
 *   gcc, static) followed by the pinned Deno from npm and the bundle, which it unpacks once, checking their
 *   SHA-256, and runs. Either way a host needs nothing else. `GPUCTL_DIST_KIND=packed|compiled` forces one;
 * - `gpuctl-<version>-linux-<arch>.tar.gz`: gpuctl, the systemd units, the Kubernetes manifests, INSTALL, and their
 *   SHA256SUMS;
 * - `gpuctl_<version>_<arch>.deb` (dpkg-deb): installs the executable, runs `gpuctl install`, ships the units
 *   disabled, and on removal undoes exactly what it did;
 * - `SHA256SUMS` of the three.
 *
 * `--only gpuctl` builds the bundle and the executable only; `--out DIR` writes there instead of `dist/`.
 * Archives are reproducible: their files' times are the commit's.
 * @module
 */
import { launcherArgs } from "./pack/build.ts";
import { eagerHot, readHot } from "./pack/eager.ts";
import { createHash } from "node:crypto";
import { VERSION } from "../version.ts";

const root = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
const deno = Deno.execPath();
const enc = new TextEncoder();
const say = (s: string) => Deno.stderr.writeSync(enc.encode(`dist: ${s}\n`));

function fail(s: string): never {
  say(s);
  Deno.exit(1);
}

async function sh(cmd: string[], opts: { cwd?: string; env?: Record<string, string>; ok?: boolean } = {}) {
  const o = await new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    cwd: opts.cwd ?? root,
    env: opts.env ?? {},
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const r = { ok: o.success, out: dec.decode(o.stdout), err: dec.decode(o.stderr) };
  if (!r.ok && opts.ok !== true) fail(`${cmd.join(" ")} failed:\n${r.err}${r.out}`);
  return r;
}

const args = [...Deno.args];
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args[i + 1];
};
const only = opt("--only");
if (only !== undefined && only !== "gpuctl") fail(`--only: "${only}" (only "gpuctl")`);
const out = (opt("--out") ?? `${root}/dist`).replace(/\/$/, "");
Deno.mkdirSync(out, { recursive: true });
const arch = Deno.build.arch === "x86_64"
  ? "amd64"
  : Deno.build.arch === "aarch64"
  ? "arm64"
  : Deno.build.arch;
const archName = Deno.build.arch === "x86_64" ? "x86_64" : Deno.build.arch;

// --- the commit and date it is built from ----------------------------------------------------------------
const git = async (...a: string[]) => (await sh(["git", ...a], { ok: true })).out.trim();
const head = await git("rev-parse", "--short=12", "HEAD");
const dirty = head !== "" && (await git("status", "--porcelain", "--untracked-files=no")) !== "";
const commit = head === "" ? null : `${head}${dirty ? "+dirty" : ""}`;
const epoch = Number(Deno.env.get("SOURCE_DATE_EPOCH") ?? (await git("log", "-1", "--format=%ct")) ?? "") ||
  Math.floor(Date.now() / 1000);
const date = new Date(epoch * 1000).toISOString().replace(/\.000Z$/, "Z");

// --- the bundle ---------------------------------------------------------------------------------------------
const t0 = performance.now();
const task = JSON.parse(Deno.readTextFileSync(`${root}/deno.json`)).tasks.bundle as string;
const bundleCmd = task.replace("./node_modules/.bin/deno", deno).replace(
  "-o dist/gpuctl.js",
  `-o ${out}/gpuctl.js`,
);
if (!bundleCmd.includes(`${out}/gpuctl.js`)) {
  fail(`deno.json's bundle task has no "-o dist/gpuctl.js": ${task}`);
}
await sh(["sh", "-c", bundleCmd]);
const STAMP = `"@@GPUCTL_BUILD_STAMP@@"`;
let js = Deno.readTextFileSync(`${out}/gpuctl.js`);
if (js.split(STAMP).length !== 2) {
  fail(`the bundle holds the build stamp ${js.split(STAMP).length - 1} times, not once`);
}
js = js.replace(STAMP, JSON.stringify(JSON.stringify({ commit, date })));
// The functions a container's gpuctl runs, compiled with the bundle and so kept in its code cache.
const eager = eagerHot(js, readHot(`${root}/tools/pack/hot_functions.txt`));
js = eager.js;
Deno.writeTextFileSync(`${out}/gpuctl.js`, js);
say(
  `${out}/gpuctl.js (${(js.length / 1024).toFixed(0)} KiB, commit ${
    commit ?? "unknown"
  }; ${eager.functions} functions and ${eager.inits} module initializers compiled up front)`,
);

// --- the executable -----------------------------------------------------------------------------------------
const exe = `${out}/gpuctl`;
const wanted = Deno.env.get("GPUCTL_DIST_KIND") ?? "auto";
if (!["auto", "packed", "compiled"].includes(wanted)) {
  fail(`GPUCTL_DIST_KIND=${wanted}: packed, compiled or auto`);
}
let kind: "packed" | "compiled" | null = null;
if (wanted !== "packed") {
  const denort = Deno.env.get("DENORT_BIN");
  if (
    denort !== undefined && !(() => {
      try {
        return Deno.statSync(denort).isFile;
      } catch { // not there
        return false;
      }
    })()
  ) fail(`DENORT_BIN=${denort}: not a file; it must name Deno's denort for Deno ${Deno.version.deno}`);
  const c = await new Deno.Command(deno, {
    args: ["compile", "--quiet", "-A", "--no-check", "--output", `${exe}.compiled`, `${out}/gpuctl.js`],
    cwd: root,
    env: { NO_COLOR: "1", ...(denort ? { DENORT_BIN: denort } : {}) },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output().catch((e) => ({ success: false, stderr: enc.encode(String(e)), stdout: new Uint8Array() }));
  // deno's error ends in a chain of causes: the download's is the telling one.
  const lines = new TextDecoder().decode(c.stderr).split("\n").map((l) => l.trim());
  const why = (lines.find((l) => /error sending request|dns error|Connect|denort/i.test(l)) ??
    lines.find((l) => l !== "") ?? "").replace(/^\d+: /, "").replace(/^error: /i, "");
  if (c.success) {
    // A full deno given as DENORT_BIN makes a binary that is the deno CLI, not gpuctl: caught here.
    const v = await sh([`${exe}.compiled`, "--version"], { ok: true });
    if (v.out.startsWith("gpuctl ")) {
      Deno.renameSync(`${exe}.compiled`, exe);
      kind = "compiled";
    } else {
      Deno.removeSync(`${exe}.compiled`);
      if (wanted === "compiled" || denort) {
        fail(
          `deno compile's output does not run as gpuctl ("${
            v.out.split("\n")[0]
          }"): is DENORT_BIN really denort?`,
        );
      }
    }
  } else if (wanted === "compiled" || denort) {
    fail(`deno compile failed: ${why}`);
  } else {
    say(`no denort for deno compile (${why.slice(0, 200)}): packing instead`);
  }
}
if (kind === null) {
  kind = "packed";
  const obj = await Deno.makeTempDir({ prefix: "gpuctl-dist-" });
  try {
    await sh(["gcc", ...launcherArgs(root, `${obj}/launcher`)]);
    await sh(["strip", `${obj}/launcher`]);
    const launcher = Deno.readFileSync(`${obj}/launcher`);
    const denoBin = Deno.realPathSync(deno);
    const denoSize = Deno.statSync(denoBin).size;
    const bundle = enc.encode(js);
    const sha = createHash("sha256");
    const f = Deno.openSync(denoBin, { read: true });
    const tmp = `${exe}.tmp-${Deno.pid}`;
    const w = Deno.openSync(tmp, { write: true, create: true, truncate: true, mode: 0o755 });
    try {
      w.writeSync(launcher) === launcher.length || fail("short write");
      const buf = new Uint8Array(1 << 20);
      for (let n; (n = f.readSync(buf)) !== null;) {
        sha.update(buf.subarray(0, n));
        let done = 0;
        while (done < n) done += w.writeSync(buf.subarray(done, n));
      }
      sha.update(bundle);
      let done = 0;
      while (done < bundle.length) done += w.writeSync(bundle.subarray(done));
      // The trailer: tools/pack/launcher.c's struct trailer, 256 bytes.
      const t = new Uint8Array(256);
      const dv = new DataView(t.buffer);
      t.set(enc.encode("GPUCTL-PACK-1"), 0);
      dv.setBigUint64(16, BigInt(launcher.length), true);
      dv.setBigUint64(24, BigInt(denoSize), true);
      dv.setBigUint64(32, BigInt(launcher.length + denoSize), true);
      dv.setBigUint64(40, BigInt(bundle.length), true);
      t.set(enc.encode(sha.digest("hex")), 48);
      t.set(enc.encode(VERSION).subarray(0, 63), 113);
      t.set(enc.encode("GPUCTLPK"), 248);
      w.writeSync(t);
      w.syncSync();
    } finally {
      f.close();
      w.close();
    }
    Deno.chmodSync(tmp, 0o755);
    Deno.renameSync(tmp, exe);
  } finally {
    await Deno.remove(obj, { recursive: true });
  }
}
// It runs: unpacked into a scratch directory for this check, not beside it.
{
  const scratch = await Deno.makeTempDir({ prefix: "gpuctl-dist-run-" });
  try {
    const v = await sh([exe, "--version"], { env: { GPUCTL_RUNTIME_DIR: scratch } });
    if (!v.out.startsWith(`gpuctl ${VERSION}\n${kind}`)) fail(`${exe} --version says "${v.out.trim()}"`);
  } finally {
    await Deno.remove(scratch, { recursive: true });
  }
}
const size = Deno.statSync(exe).size;
say(
  `${exe} (${kind}, ${(size / (1 << 20)).toFixed(1)} MiB, ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
);
if (only === "gpuctl") Deno.exit(0);

// --- archives -----------------------------------------------------------------------------------------------
function sha256File(path: string): string {
  const h = createHash("sha256");
  const f = Deno.openSync(path, { read: true });
  try {
    const buf = new Uint8Array(1 << 20);
    for (let n; (n = f.readSync(buf)) !== null;) h.update(buf.subarray(0, n));
  } finally {
    f.close();
  }
  return h.digest("hex");
}
function put(path: string, data: string | Uint8Array, mode = 0o644) {
  Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  if (typeof data === "string") Deno.writeTextFileSync(path, data);
  else Deno.writeFileSync(path, data);
  Deno.chmodSync(path, mode);
}
const listDir = (d: string) =>
  [...Deno.readDirSync(`${root}/${d}`)].filter((e) => e.isFile).map((e) => e.name).sort();

const INSTALL =
  `gpuctl ${VERSION}: NVIDIA GPUs in Docker, Podman and Kubernetes containers, from one executable.

Check the download, then install (as root):

  sha256sum -c SHA256SUMS
  ./gpuctl install                 # copies itself to /usr/local/lib/gpuctl/, links /usr/local/bin/gpuctl,
                                   # writes /usr/local/bin/gpuctl-runtime and nvidia-container-runtime-hook
  gpuctl configure docker          # or containerd, crio; then restart the engine
  gpuctl doctor                    # what is still missing, with the command for each

Optional: keep gpuctl running (GPU containers start faster), and a CDI spec kept current:

  install -m 0644 systemd/*.service systemd/*.path /etc/systemd/system/
  systemctl daemon-reload && systemctl enable --now gpuctl-serve gpuctl-cdi.service gpuctl-cdi.path

Kubernetes: kubernetes/ (see the README's Kubernetes section). Remove: gpuctl configure docker --remove
(and the others you configured), systemctl disable --now gpuctl-serve if you enabled it, then
gpuctl install --uninstall. Upgrade: the new gpuctl's install.
`;

const stage = await Deno.makeTempDir({ prefix: "gpuctl-dist-stage-" });
try {
  // The tarball.
  const name = `gpuctl-${VERSION}`;
  const t = `${stage}/tar/${name}`;
  put(`${t}/gpuctl`, Deno.readFileSync(exe), 0o755);
  for (const f of listDir("deploy/systemd")) {
    put(`${t}/systemd/${f}`, Deno.readFileSync(`${root}/deploy/systemd/${f}`));
  }
  for (const f of listDir("deploy/kubernetes")) {
    put(`${t}/kubernetes/${f}`, Deno.readFileSync(`${root}/deploy/kubernetes/${f}`));
  }
  put(`${t}/INSTALL`, INSTALL);
  // The manual page, from the same help texts the executable prints.
  const { manPage } = await import("./man.ts");
  const man = await manPage(new Date(epoch * 1000).toISOString().slice(0, 10));
  put(`${t}/man/gpuctl.1`, man);
  const inside = [
    "gpuctl",
    "INSTALL",
    "man/gpuctl.1",
    ...listDir("deploy/systemd").map((f) => `systemd/${f}`),
    ...listDir(
      "deploy/kubernetes",
    ).map((f) => `kubernetes/${f}`),
  ];
  put(`${t}/SHA256SUMS`, inside.map((f) => `${sha256File(`${t}/${f}`)}  ${f}\n`).join(""));
  const tarball = `gpuctl-${VERSION}-linux-${archName}.tar.gz`;
  await sh([
    "sh",
    "-c",
    `tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@${epoch} -C "$0/tar" -cf - ${name} | gzip -n -6 > "$1"`,
    stage,
    `${out}/${tarball}`,
  ]);
  say(`${out}/${tarball}`);

  // The Debian package. The executable at a fixed path dpkg replaces by rename; its postinst runs gpuctl install,
  // which links it (no copy) to /usr/lib/gpuctl/<version>-<digest>/gpuctl and names only that, so an upgrade
  // never leaves the fronts naming a file dpkg has removed.
  const d = `${stage}/deb`;
  const pkgExe = "/usr/lib/gpuctl/gpuctl.pkg";
  put(`${d}${pkgExe}`, Deno.readFileSync(exe), 0o755);
  for (const f of listDir("deploy/systemd")) {
    const text = Deno.readTextFileSync(`${root}/deploy/systemd/${f}`).replaceAll(
      "/usr/local/bin/",
      "/usr/bin/",
    );
    put(`${d}/lib/systemd/system/${f}`, text);
  }
  for (const f of listDir("deploy/kubernetes")) {
    put(`${d}/usr/share/doc/gpuctl/kubernetes/${f}`, Deno.readFileSync(`${root}/deploy/kubernetes/${f}`));
  }
  put(`${d}/usr/share/man/man1/gpuctl.1`, man);
  await sh(["gzip", "-n", "-9", `${d}/usr/share/man/man1/gpuctl.1`]);
  put(
    `${d}/usr/share/doc/gpuctl/copyright`,
    `Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nUpstream-Name: gpuctl\nFiles: *\nLicense: Apache-2.0\n`,
  );
  // The package's scripts run the packaged file unpacking Deno where its version directory's link will, so it is
  // unpacked once.
  const installArgs = "--prefix /usr/bin --lib-dir /usr/lib/gpuctl";
  const versionDir = `/usr/lib/gpuctl/${VERSION}-${sha256File(exe).slice(0, 12)}`;
  const run = `GPUCTL_RUNTIME_DIR=${versionDir}/.gpuctl-runtime ${pkgExe}`;
  const control = `Package: gpuctl
Version: ${VERSION}
Architecture: ${arch}
Maintainer: gpuctl developers <gpuctl@localhost>
Depends: libc6 (>= 2.17), libgcc-s1 | libgcc1
Section: admin
Priority: optional
Installed-Size: ${Math.ceil(size / 1024)}
Description: NVIDIA GPUs in Docker, Podman and Kubernetes containers
 gpuctl is an OCI runtime shim, an OCI prestart hook and a CDI spec generator for
 NVIDIA GPUs, honouring NVIDIA's request contract, in one executable.
 This package installs gpuctl-runtime and nvidia-container-runtime-hook in /usr/bin
 and ships its systemd units disabled. Register it with an engine with
 'gpuctl configure docker|containerd|crio'; 'gpuctl doctor' checks the host.
`;
  put(`${d}/DEBIAN/control`, control);
  put(
    `${d}/DEBIAN/postinst`,
    `#!/bin/sh
# gpuctl's postinst: gpuctl install, which links the packaged executable to its version directory and writes
# the fronts in /usr/bin; it prints what it made.
set -e
case "$1" in
configure) ${run} install --link ${installArgs} ;;
esac
exit 0
`,
    0o755,
  );
  put(
    `${d}/DEBIAN/prerm`,
    `#!/bin/sh
# gpuctl's prerm: on removal, gpuctl install --uninstall, which refuses (and so stops the removal) while an
# engine's configuration or a CDI spec still names gpuctl, or gpuctl serve runs, saying which and how to undo
# it; it removes what gpuctl kept at run time in its cacheDir. On upgrade nothing: the new version's postinst
# switches every name over atomically.
set -e
case "$1" in
remove | deconfigure) ${run} install --uninstall ${installArgs} ;;
esac
exit 0
`,
    0o755,
  );
  put(
    `${d}/DEBIAN/postrm`,
    `#!/bin/sh
# gpuctl's postrm: what gpuctl made at run time and dpkg does not know of: Deno unpacked beside the executable,
# and (purge) its fallback directory.
set -e
case "$1" in
remove | purge)
  rm -rf /usr/lib/gpuctl/.gpuctl-runtime
  rmdir /usr/lib/gpuctl 2>/dev/null || true
  ;;
esac
[ "$1" != purge ] || rm -rf /var/lib/gpuctl
exit 0
`,
    0o755,
  );
  const deb = `gpuctl_${VERSION}_${arch}.deb`;
  await sh(["sh", "-c", `find "$0" -exec touch -h -d @${epoch} {} +`, d]);
  await sh(["dpkg-deb", "--root-owner-group", "-Zxz", "-z1", "--build", d, `${out}/${deb}`], {
    env: { SOURCE_DATE_EPOCH: String(epoch), PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
  });
  say(`${out}/${deb}`);

  const sums = ["gpuctl", tarball, deb].map((f) => `${sha256File(`${out}/${f}`)}  ${f}\n`).join("");
  Deno.writeTextFileSync(`${out}/SHA256SUMS`, sums);
  say(`${out}/SHA256SUMS (${((performance.now() - t0) / 1000).toFixed(1)} s in all)`);
} finally {
  await Deno.remove(stage, { recursive: true });
}
