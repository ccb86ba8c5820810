/**
 * The `yaml` package, through its ES module build (deno.json maps `yaml` to it): its CommonJS build requires
 * `node:process` and `node:buffer` at run time, which a bundle cannot resolve ("Dynamic require … is not
 * supported"). Loaded only where a YAML spec is read or written.
 * @module
 */
// @ts-types="../node_modules/yaml/dist/index.d.ts"
import { parse, parseAllDocuments, stringify } from "yaml";

export { parse, parseAllDocuments, stringify };
