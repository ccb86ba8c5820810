/**
 * `NVIDIA_REQUIRE_*`: constraints an image puts on the host. Within one variable a space means OR and a comma
 * means AND; separate variables are ANDed. Keys: `cuda`, `driver`, `arch` (dotted versions, compared
 * numerically, trailing `.0` ignored) and `brand` (`=`/`!=`, any case). Operators `= != < <= > >=`.
 * A constraint on data the host does not have passes (as NVIDIA's does).
 * @module
 */
import { GpuctlError, quote } from "../errors/mod.ts";
import { BRANDS } from "../devices/types.ts";

export type Op = "=" | "!=" | "<" | "<=" | ">" | ">=";
export interface Condition {
  key: "cuda" | "driver" | "arch" | "brand";
  op: Op;
  value: string;
  text: string;
}
/** One variable: OR of ANDs. */
export interface Requirement {
  source: string;
  alternatives: Condition[][];
}

/**
 * The brand a requirement compares against: NVIDIA's short name for a brand `info` shows (`NVIDIA RTX` is
 * `nvidiartx`); a name this table does not know is compared as it is.
 */
export function requirementBrand(displayName: string | null): string | null {
  if (displayName === null) return null;
  return BRANDS.find((b) => b.name.toLowerCase() === displayName.toLowerCase())?.short ?? displayName;
}

/** What the host offers for one GPU (or for none); `brand` is the short name ({@link requirementBrand}). */
export interface HostFacts {
  cuda: string | null;
  driver: string | null;
  arch: string | null;
  brand: string | null;
}

const COND = /^(cuda|driver|arch|brand)\s*(>=|<=|!=|=|>|<)\s*([A-Za-z0-9._-]+)$/i;

/** Parses one `NVIDIA_REQUIRE_*` value. */
export function parseRequirement(source: string, value: string): Requirement {
  const alternatives = value.trim().split(/\s+/).filter((s) => s !== "").map((alt) =>
    alt.split(",").filter((s) => s !== "").map((c): Condition => {
      const m = COND.exec(c.trim());
      if (!m) {
        throw new GpuctlError(
          source,
          `cannot parse the condition ${
            quote(c)
          } (expected e.g. cuda>=12.4, driver>=535, arch=9.0, brand=tesla)`,
        );
      }
      const key = m[1]!.toLowerCase() as Condition["key"];
      const op = m[2] as Op;
      if (key === "brand" && op !== "=" && op !== "!=") {
        throw new GpuctlError(source, `${quote(c)}: brand takes only = or !=`);
      }
      if (key !== "brand" && !/^\d+(\.\d+)*$/.test(m[3]!)) {
        throw new GpuctlError(source, `${quote(c)}: ${key} needs a dotted number`);
      }
      return { key, op, value: m[3]!, text: c.trim() };
    })
  );
  return { source, alternatives };
}

/**
 * Compares NVIDIA's dotted numbers numerically, part by part (`12.4` equals `12.4.0`; driver `535.104.05` is
 * greater than `535.54.03`). Not semver: driver versions have leading zeros and may have four parts, and the
 * semver package would pull Deno's Node compatibility layer into every container start (`deno task bench`).
 */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number), pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

function holds(c: Condition, host: HostFacts): boolean {
  const have = host[c.key];
  if (have === null) return true;
  if (c.key === "brand") {
    const eq = have.toLowerCase() === c.value.toLowerCase();
    return c.op === "=" ? eq : !eq;
  }
  const d = compareVersions(have, c.value);
  switch (c.op) {
    case "=":
      return d === 0;
    case "!=":
      return d !== 0;
    case "<":
      return d < 0;
    case "<=":
      return d <= 0;
    case ">":
      return d > 0;
    case ">=":
      return d >= 0;
  }
}

/**
 * Checks requirements against each set of facts (one per selected GPU, or one without a GPU); throws naming the
 * first unsatisfied variable, its value, and the host's values.
 */
export function checkRequirements(reqs: readonly Requirement[], facts: readonly HostFacts[]): void {
  for (const f of facts) {
    for (const r of reqs) {
      if (r.alternatives.length === 0) continue;
      if (r.alternatives.some((all) => all.every((c) => holds(c, f)))) continue;
      const host = (["cuda", "driver", "arch", "brand"] as const).filter((k) => f[k] !== null).map((k) =>
        `${k} ${f[k]}`
      );
      const text = r.alternatives.map((a) => a.map((c) => c.text).join(",")).join(" ");
      throw new GpuctlError(
        r.source,
        `unsatisfied requirement ${quote(text, 200)}: this host has ${
          host.join(", ")
        } (upgrade the driver, or set NVIDIA_DISABLE_REQUIRE=true)`,
      );
    }
  }
}
