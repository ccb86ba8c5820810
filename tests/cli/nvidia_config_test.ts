/**
 * NVIDIA's config.toml on a host without a configuration of gpuctl's own: its keys that gpuctl has are honoured,
 * the others named with what gpuctl does instead, and `config --from-nvidia` writes the equivalent file. Run where
 * /etc/gpuctl is empty (a private mount namespace), whatever the host has there.
 */
import { assertEquals, assertStringIncludes } from "../assert.ts";
import { DENO, PROJECT, tempDir } from "../helpers.ts";
import { privateMounts } from "../e2e/privatens.ts";

const TOML = `disable-require = false
swarm-resource = "DOCKER_RESOURCE_GPU"

[nvidia-container-cli]
root = "/run/nvidia/driver"
ldconfig = "@/sbin/ldconfig.real"
load-kmods = true
no-cgroups = true

[nvidia-container-runtime]
mode = "legacy"
runtimes = ["docker-runc", "runc"]
log-level = "info"

[nvidia-container-runtime.modes.cdi]
spec-dirs = ["/etc/cdi"]
`;

async function gpuctl(t: string, ...args: string[]) {
  const ns = privateMounts({ "/etc/gpuctl": `${t}/etc-gpuctl` }, `${t}/ns`);
  const o = await new Deno.Command(ns[0]!, {
    args: [...ns.slice(1), DENO, "run", "-A", "--quiet", `${PROJECT}/cli/main.ts`, ...args],
    env: { NVIDIA_CTK_CONFIG_FILE_PATH: `${t}/config.toml`, GPUCTL_CONFIG: "", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

Deno.test({
  name:
    "NVIDIA's config.toml: honoured where gpuctl has an equivalent, the rest named; --from-nvidia writes gpuctl's",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    using t = tempDir();
    Deno.writeTextFileSync(`${t.path}/config.toml`, TOML);
    const c = await gpuctl(t.path, "config", "--json");
    assertEquals(c.code, 0, c.stderr);
    const j = JSON.parse(c.stdout);
    assertEquals(j.file, null);
    const v = (k: string) => [j.config[k].value, j.config[k].from];
    const f = `${t.path}/config.toml`;
    assertEquals(v("driverRoot"), ["/run/nvidia/driver", `${f} (nvidia-container-cli.root)`]);
    assertEquals(v("noCgroups"), [true, `${f} (nvidia-container-cli.no-cgroups)`]);
    assertEquals(v("mode"), ["hook", `${f} (nvidia-container-runtime.mode)`]);
    assertEquals(v("runtimes"), [["docker-runc", "runc"], `${f} (nvidia-container-runtime.runtimes)`]);
    assertEquals(v("swarmResource"), [["DOCKER_RESOURCE_GPU"], `${f} (swarm-resource)`]);
    assertEquals(v("cdiSpecDirs"), [["/etc/cdi"], `${f} (nvidia-container-runtime.modes.cdi.spec-dirs)`]);
    assertEquals(v("cacheDir"), ["/run/gpuctl", "default"]);
    const text = await gpuctl(t.path, "config");
    assertStringIncludes(text.stdout, `# ${f} (NVIDIA's; /etc/gpuctl/config.jsonc is absent)\n`);
    assertStringIncludes(
      text.stdout,
      '# nvidia-container-cli.ldconfig = "@/sbin/ldconfig.real": not used: gpuctl writes the container\'s linker cache itself, running nothing from the image\n',
    );
    assertStringIncludes(
      text.stdout,
      "# nvidia-container-cli.load-kmods = true: not used: gpuctl loads no kernel module",
    );
    // doctor names what did not carry over, with the command that writes gpuctl's own file.
    const doc = await gpuctl(t.path, "doctor", "--json", "--engine", "none", "--prefix", `${t.path}/bin`);
    const check = JSON.parse(doc.stdout).checks.find((c: { id: string }) => c.id === "gpuctl.config");
    assertEquals(check.status, "warn", doc.stdout);
    assertStringIncludes(
      check.saw,
      `no gpuctl configuration: NVIDIA's ${f} is read, and these keys did not carry over: `,
    );
    assertStringIncludes(
      check.saw,
      "nvidia-container-cli.ldconfig (gpuctl writes the container's linker cache itself",
    );
    assertEquals(
      check.fix,
      "gpuctl config --from-nvidia --output /etc/gpuctl/config.jsonc (then review what it says did not carry over)",
    );
    const g = await gpuctl(t.path, "config", "--from-nvidia");
    assertEquals(g.code, 0, g.stderr);
    assertStringIncludes(
      g.stdout,
      '  // from nvidia-container-cli.root\n  "driverRoot": "/run/nvidia/driver",\n',
    );
    // What it wrote is a configuration gpuctl reads, giving the same values.
    Deno.mkdirSync(`${t.path}/etc-gpuctl`, { recursive: true });
    Deno.writeTextFileSync(`${t.path}/etc-gpuctl/config.jsonc`, g.stdout);
    const again = JSON.parse((await gpuctl(t.path, "config", "--json")).stdout);
    assertEquals(again.file, "/etc/gpuctl/config.jsonc");
    for (const k of ["driverRoot", "noCgroups", "mode", "runtimes", "swarmResource", "cdiSpecDirs"]) {
      assertEquals(again.config[k].value, j.config[k].value, k);
    }
  },
});
