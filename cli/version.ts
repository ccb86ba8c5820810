/** gpuctl's version; `tests/cli` checks it against package.json. */
export const VERSION = "0.1.0";
