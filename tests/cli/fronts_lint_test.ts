/**
 * The fronts as `gpuctl install` writes them (preamble and `serve/fronts/*.sh`), with and without a serve client,
 * pass shellcheck for POSIX sh: they run under whatever /bin/sh the host has (dash on Debian, busybox elsewhere).
 */
import { assertEquals } from "../assert.ts";
import { tempDir } from "../helpers.ts";
import { hookFront, runtimeFront, type ServeClient } from "../../serve/fronts.ts";
import { defaultConfig } from "../../config/schema.ts";

const serve: ServeClient = {
  dir: "/run/gpuctl/serve",
  timeout: 30,
  mkfifo: "/usr/bin/mkfifo",
  sleep: "/bin/sleep",
  head: "/usr/bin/head",
  rm: "/bin/rm",
};

Deno.test("fronts: shellcheck finds nothing in either front, with or without gpuctl serve", async () => {
  using t = tempDir();
  const files: string[] = [];
  for (const s of [serve, null]) {
    const tag = s === null ? "plain" : "serve";
    const o = { gpuctl: ["/usr/local/lib/gpuctl/0.1.0-abc/gpuctl"], version: "test", serve: s };
    Deno.writeTextFileSync(`${t.path}/hook-${tag}`, hookFront(o));
    Deno.writeTextFileSync(
      `${t.path}/runtime-${tag}`,
      runtimeFront({
        ...o,
        config: { ...defaultConfig(), cdiAnnotationPrefixes: ["cdi.k8s.io/", "it's.example/"] },
        configFile: "/etc/gpuctl/config.jsonc",
        hadConfig: true,
        self: "/usr/local/bin/gpuctl-runtime",
        grep: "/usr/bin/grep",
      }),
    );
    files.push(`${t.path}/hook-${tag}`, `${t.path}/runtime-${tag}`);
  }
  const o = await new Deno.Command("shellcheck", {
    args: ["--shell=sh", "--severity=style", ...files],
    stdout: "piped",
  })
    .output();
  assertEquals(new TextDecoder().decode(o.stdout), "");
  assertEquals(o.code, 0);
});
