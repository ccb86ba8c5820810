import type { Capability } from "./types.ts";

/** `compat32`: the 32-bit builds of the other requested capabilities' libraries, into the 32-bit library dir. */
export const compat32: Capability = {
  name: "compat32",
  description: "32-bit libraries for the other requested capabilities",
  compat32: true,
};
