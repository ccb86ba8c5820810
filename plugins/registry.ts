/**
 * The capability registry: the built-in plugins, extended or added to by declarative ones, and the
 * `NVIDIA_DRIVER_CAPABILITIES` grammar resolved against it.
 * @module
 */
import { GpuctlError, quote } from "../errors/mod.ts";
import { compat32 } from "./compat32.ts";
import { compute } from "./compute.ts";
import { display } from "./display.ts";
import { graphics } from "./graphics.ts";
import { ngx } from "./ngx.ts";
import type { Capability } from "./types.ts";
import { utility } from "./utility.ts";
import { video } from "./video.ts";
import gds from "./gated/gds.jsonc" with { type: "text" };
import mofed from "./gated/mofed.jsonc" with { type: "text" };
import gdrcopy from "./gated/gdrcopy.jsonc" with { type: "text" };
import nvswitch from "./gated/nvswitch.jsonc" with { type: "text" };

/** The built-in capabilities, in the order their files are listed. */
export const BUILTIN: readonly Capability[] = [utility, compute, video, graphics, display, ngx, compat32].map(
  (c) => ({
    ...c,
    origin: "builtin",
  }),
);

/**
 * Capabilities shipped as declarative plugins (`plugins/gated/*.jsonc`, the same format as a site's own):
 * switched on by NVIDIA's variables (`NVIDIA_GDS=enabled`, …) or named in `NVIDIA_DRIVER_CAPABILITIES`, never part
 * of `all`, and parsed only when a container asks for one.
 */
export const GATED_PLUGINS: Readonly<Record<string, string>> = { gds, mofed, gdrcopy, nvswitch };

/** What a container gets when it sets no `NVIDIA_DRIVER_CAPABILITIES`. */
export const DEFAULT_CAPABILITIES = ["utility", "compute"] as const;

/** The declarative plugin files in `dir` (`*.jsonc`, `*.json`), sorted by name; a missing directory has none. */
export function pluginFiles(dir: string): string[] {
  try {
    return [...Deno.readDirSync(dir)].filter((e) => e.isFile && /\.jsonc?$/.test(e.name)).map((e) => e.name)
      .sort();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw new GpuctlError(`pluginsDir ${dir}`, (e as Error).message, 1, { cause: e });
  }
}

const concat = <T>(a: readonly T[] | undefined, b: readonly T[] | undefined): T[] | undefined =>
  a === undefined && b === undefined ? undefined : [...(a ?? []), ...(b ?? [])];

/** `ext` added to `base`: lists concatenated, env merged. */
export function extendCapability(base: Capability, ext: Capability): Capability {
  const out: Capability = { ...base, origin: `${base.origin ?? "builtin"} + ${ext.origin ?? "plugin"}` };
  const lists = [
    "implies",
    "libraries",
    "ownVersionLibraries",
    "binaries",
    "ipcs",
    "deviceNodes",
    "files",
    "symlinks",
  ] as const;
  for (const k of lists) {
    const v = concat<unknown>(base[k], ext[k]);
    if (v !== undefined) (out as unknown as Record<string, unknown>)[k] = v;
  }
  if (base.env || ext.env) out.env = { ...base.env, ...ext.env };
  return out;
}

/** The capabilities a request resolves to. */
export interface ResolvedCapabilities {
  /** As requested (after `all` and the default are expanded), in registry order. */
  requested: string[];
  /** Requested plus implied (video → compute), in registry order. */
  effective: string[];
  /** Whether 32-bit libraries are wanted. */
  compat32: boolean;
}

export class Registry {
  readonly #caps = new Map<string, Capability>();

  constructor(capabilities: readonly Capability[] = BUILTIN) {
    for (const c of capabilities) {
      const have = this.#caps.get(c.name);
      this.#caps.set(c.name, have ? extendCapability(have, c) : c);
    }
    for (const c of this.#caps.values()) {
      for (const i of c.implies ?? []) {
        if (!this.#caps.has(i)) {
          throw new GpuctlError(
            `capability ${c.name}`,
            `implies unknown capability "${i}" (from ${c.origin ?? "?"})`,
          );
        }
      }
    }
  }

  /** Every capability name, in registry order. */
  get names(): string[] {
    return [...this.#caps.keys()];
  }

  /** Whether a capability is one of the gated built-ins (not part of `all`). */
  static isGated(name: string): boolean {
    return Object.hasOwn(GATED_PLUGINS, name);
  }

  get(name: string): Capability | undefined {
    return this.#caps.get(name);
  }

  /**
   * Resolves a `NVIDIA_DRIVER_CAPABILITIES` value as NVIDIA does: unset or empty → `utility,compute`; `all` →
   * every capability but the gated ones; otherwise a comma list, names as written (they are case-sensitive). An
   * unknown name is an error naming it and the known ones; `source` names the input. `gated` adds capabilities
   * switched on by their own variables (`NVIDIA_GDS=enabled`).
   */
  resolve(
    value: string | undefined,
    source = "NVIDIA_DRIVER_CAPABILITIES",
    gated: readonly string[] = [],
  ): ResolvedCapabilities {
    const items = (value ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
    let wanted: Set<string>;
    if (items.length === 0) wanted = new Set(DEFAULT_CAPABILITIES);
    else if (items.includes("all")) wanted = new Set(this.names.filter((n) => !Registry.isGated(n)));
    else {
      for (const i of items) {
        if (!this.#caps.has(i)) {
          const known = new Set([...this.names, ...Object.keys(GATED_PLUGINS)]);
          throw new GpuctlError(
            source,
            `unknown capability ${quote(i)} (known: ${[...known].sort().join(", ")}, all)`,
          );
        }
      }
      wanted = new Set(items);
    }
    for (const g of gated) {
      if (!this.#caps.has(g)) throw new GpuctlError(`capability ${g}`, "is not loaded (a gpuctl bug)");
      wanted.add(g);
    }
    const effective = new Set(wanted);
    const visit = (n: string) => {
      for (const i of this.#caps.get(n)?.implies ?? []) {
        if (!effective.has(i)) {
          effective.add(i);
          visit(i);
        }
      }
    };
    [...wanted].forEach(visit);
    const order = (s: Set<string>) => this.names.filter((n) => s.has(n));
    return {
      requested: order(wanted),
      effective: order(effective),
      compat32: [...effective].some((n) => this.#caps.get(n)?.compat32 === true),
    };
  }
}
