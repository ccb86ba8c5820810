/**
 * The commands gpuctl tells an operator to run are the ones the README, `install` and the units use: one CDI path,
 * one set of exit codes.
 */
import { assert, assertStringIncludes } from "../assert.ts";
import { PROJECT } from "../helpers.ts";
import { CDI_FIX } from "../../doctor/checks.ts";
import { CDI_OUTPUT } from "../../cdi/spec.ts";
import { HELP as DOCTOR_HELP } from "../../cli/doctor.ts";
import { HELP as INSTALL_HELP } from "../../cli/install.ts";

const read = (p: string) => Deno.readTextFileSync(`${PROJECT}/${p}`);

Deno.test("the CDI spec's path: doctor's fix, install --cdi, the systemd unit and the README agree", () => {
  assertStringIncludes(CDI_FIX, CDI_OUTPUT);
  assertStringIncludes(read("README.md"), CDI_FIX);
  assertStringIncludes(read("deploy/systemd/gpuctl-cdi.service"), `--cdi-output ${CDI_OUTPUT}`);
  assertStringIncludes(INSTALL_HELP.replace(/\s+/g, " "), `(default ${CDI_OUTPUT})`);
  // No other path is given anywhere as the place for the spec.
  for (const f of ["README.md", "deploy/systemd/gpuctl-cdi.service"]) {
    assert(!read(f).includes("--output /etc/cdi/nvidia.json"), `${f} names another path`);
  }
});

Deno.test("exit codes: the README's table, and doctor's help, say the same", () => {
  const readme = read("README.md");
  for (const row of ["| 0 ", "| 1 ", "| 2 ", "| 3 ", "| 141 "]) assertStringIncludes(readme, row);
  assertStringIncludes(DOCTOR_HELP, "Exit status: 0 all is well, 1 failures, 3 warnings only.");
});

Deno.test("doctor --explain knows every check doctor runs, and doctor's help names each", async () => {
  const { EXPLAIN } = await import("../../doctor/explain.ts");
  const ids = [...DOCTOR_HELP.matchAll(/^ {2}([a-z.*-]+)\s{2,}/gm)].map((m) => m[1]!).filter((id) =>
    id !== "engine.*"
  );
  assert(ids.length >= 13, `the help lists the checks: ${ids.join(" ")}`);
  for (const id of ids) assert(EXPLAIN[id] !== undefined, `--explain ${id}`);
  for (const e of ["docker", "containerd", "crio", "podman"]) assert(EXPLAIN[`engine.${e}`] !== undefined, e);
  assertStringIncludes(read("README.md"), "`engine.podman`, `plan`");
});
