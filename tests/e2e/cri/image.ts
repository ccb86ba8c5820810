/**
 * An OCI image archive made from a directory, for `ctr images import`: one uncompressed layer, a config with the
 * command and PATH, a manifest and an index naming the image as containerd's CRI will look it up. Nothing pulled.
 * @module
 */

async function sha256(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", data);
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function tar(args: string[]): Promise<void> {
  const o = await new Deno.Command("tar", { args, stderr: "piped" }).output();
  if (!o.success) throw new Error(`tar ${args.join(" ")}: ${new TextDecoder().decode(o.stderr)}`);
}

/** Writes `<out>`, an OCI archive of `rootfs` named `name` (fully qualified: docker.io/…:tag) running `cmd`. */
export async function ociArchive(rootfs: string, name: string, cmd: string[], out: string): Promise<string> {
  const work = Deno.makeTempDirSync({ prefix: "gpuctl-oci-" });
  try {
    const blobs = `${work}/layout/blobs/sha256`;
    Deno.mkdirSync(blobs, { recursive: true });
    await tar(["--numeric-owner", "--owner=0", "--group=0", "-C", rootfs, "-cf", `${work}/layer.tar`, "."]);
    const layer = Deno.readFileSync(`${work}/layer.tar`);
    const layerDigest = await sha256(layer);
    Deno.renameSync(`${work}/layer.tar`, `${blobs}/${layerDigest}`);
    const blob = async (obj: unknown) => {
      const bytes = new TextEncoder().encode(JSON.stringify(obj));
      const digest = await sha256(bytes);
      Deno.writeFileSync(`${blobs}/${digest}`, bytes);
      return { digest: `sha256:${digest}`, size: bytes.length };
    };
    const config = await blob({
      architecture: "amd64",
      os: "linux",
      config: { Env: ["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"], Cmd: cmd },
      rootfs: { type: "layers", diff_ids: [`sha256:${layerDigest}`] },
    });
    const manifest = await blob({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
      layers: [{
        mediaType: "application/vnd.oci.image.layer.v1.tar",
        digest: `sha256:${layerDigest}`,
        size: layer.length,
      }],
    });
    Deno.writeTextFileSync(
      `${work}/layout/index.json`,
      JSON.stringify({
        schemaVersion: 2,
        manifests: [{
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifest,
          annotations: {
            "io.containerd.image.name": name,
            "org.opencontainers.image.ref.name": name.split(":").pop(),
          },
        }],
      }),
    );
    Deno.writeTextFileSync(`${work}/layout/oci-layout`, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    await tar(["-C", `${work}/layout`, "-cf", out, "."]);
    return out;
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
}
