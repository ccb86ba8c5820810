/**
 * The bundle rewritten so that V8 compiles the functions a container's gpuctl process runs when it compiles the
 * bundle, and so keeps them in the code cache that every later start loads.
 *
 * V8 compiles a function only when it is first called, and Deno's code cache holds what was compiled with the
 * script: the top level and the functions V8 was told to compile at once. So every start of gpuctl compiled the few
 * hundred functions a hook or a shim runs all over again. V8 compiles at once a function written as a
 * parenthesized function expression; this writes the hot ones that way (`tools/pack/hot_functions.txt`, made by
 * `deno task hot` from what the hooks, the shim and `cdi generate` run), and only those: doing it to every function
 * made the code cache as slow to load as the compiling it saved.
 *
 * In esbuild's bundle (minified, names kept), and inside what is rewritten every arrow function and function
 * expression parenthesized too (V8 compiles those with the function around them; methods and inner declarations
 * still wait for their first call):
 * - a top-level `function f(…){…}` whose kept name is hot becomes `var f=(function f(…){…});` at the very top of
 *   the bundle, so it is defined before any other statement runs, as a hoisted declaration was;
 * - a module's lazy initializer (`var init=__esm(()=>{…})`) that names a hot function becomes
 *   `__esm((function(){…}))`: called as a plain function in a module, its `this` is undefined as the arrow's was,
 *   and its body names no `arguments` (checked), which would be the function's own.
 * @module
 */
import { parse } from "acorn";

/** An acorn node, as much of it as is read here. */
interface Node {
  type: string;
  start: number;
  end: number;
  name?: string;
  value?: unknown;
  [k: string]: unknown;
}

function children(n: Node): Node[] {
  const out: Node[] = [];
  for (const [k, v] of Object.entries(n)) {
    if (k === "start" || k === "end" || k === "type") continue;
    if (Array.isArray(v)) {
      for (const c of v) if (c && typeof c === "object" && "type" in c) out.push(c as Node);
    }
    if (v && typeof v === "object" && !Array.isArray(v) && "type" in v) out.push(v as Node);
  }
  return out;
}

/** Every node under `n` (itself included), not entering functions when `enterFunctions` is false. */
function* walk(n: Node, enterFunctions = true): Generator<Node> {
  yield n;
  for (const c of children(n)) {
    if (!enterFunctions && (c.type === "FunctionExpression" || c.type === "FunctionDeclaration")) continue;
    yield* walk(c, enterFunctions);
  }
}

const text = (js: string, n: Node) => js.slice(n.start, n.end);

/** The bundle's top-level function names with their kept (source) names: esbuild's `__name(f, "name")` calls. */
export function keptNames(
  js: string,
): { ast: Node; names: Map<string, string>; esm: string | null; keep: string } {
  const ast = parse(js, { ecmaVersion: "latest", sourceType: "module" }) as unknown as Node;
  let esm: string | null = null, keep: string | null = null;
  for (const s of ast.body as Node[]) {
    if (s.type !== "VariableDeclaration") continue;
    for (const d of s.declarations as Node[]) {
      const init = d.init as Node | null;
      if (init === null) continue;
      const t = text(js, init), id = (d.id as Node).name!;
      if (/^\((\w+),(\w+)\)=>\(\)=>\(\1&&\(\2=\1\(\1=0\)\),\2\)$/.test(t)) esm = id;
      if (/^\((\w+),(\w+)\)=>[\w$]+\(\1,"name",\{value:\2,configurable:!0\}\)$/.test(t)) keep = id;
    }
  }
  if (keep === null) throw new Error("the bundle has no keep-names helper: build it with --keep-names");
  const names = new Map<string, string>();
  for (const n of walk(ast)) {
    if (n.type !== "CallExpression") continue;
    const [f, name] = n.arguments as Node[];
    if (
      (n.callee as Node).type === "Identifier" && (n.callee as { name: string }).name === keep &&
      f?.type === "Identifier" && name?.type === "Literal" && typeof name.value === "string"
    ) {
      names.set((f as { name: string }).name, name.value);
    }
  }
  return { ast, names, esm, keep };
}

/** Whether anything in `n` assigns to (or increments) the identifier `name`. */
function assignsTo(n: Node, name: string): boolean {
  for (const c of walk(n)) {
    const target = c.type === "AssignmentExpression"
      ? c.left
      : c.type === "UpdateExpression"
      ? c.argument
      : null;
    if ((target as Node | null)?.type === "Identifier" && (target as Node).name === name) return true;
  }
  return false;
}

/**
 * The text of `n` with every arrow function and function expression inside it parenthesized: V8 compiles those
 * with the function around them (an inner declaration, or an unparenthesized one, waits for its first call).
 */
function innerEager(js: string, n: Node): string {
  const marks: [number, string][] = [];
  for (const c of walk(n)) {
    if (c === n) continue;
    // A method's function (in a class or an object literal) has no text of its own to wrap: only an expression
    // that starts with `function` is one.
    const wrap = c.type === "ArrowFunctionExpression" ||
      (c.type === "FunctionExpression" && /^(async\s*)?function\b/.test(js.slice(c.start, c.start + 16)));
    if (wrap) marks.push([c.start, "("], [c.end, ")"]);
  }
  marks.sort((a, b) => a[0] - b[0]);
  let out = "", at = n.start;
  for (const [pos, t] of marks) {
    out += js.slice(at, pos) + t;
    at = pos;
  }
  return out + js.slice(at, n.end);
}

/** `js` with the functions named in `hot` (and the initializers of their modules) compiled up front. */
export function eagerHot(
  js: string,
  hot: ReadonlySet<string>,
): { js: string; functions: number; inits: number } {
  const { ast, names, esm, keep } = keptNames(js);
  const isHot = (minified: string) => hot.has(names.get(minified) ?? "");
  const hoisted: string[] = [];
  const edits: [number, number, string][] = [];
  let inits = 0;
  for (const s of ast.body as Node[]) {
    // A function that assigns its own name is left alone: inside a named function expression that name is the
    // function's own, and a strict-mode assignment to it throws.
    if (
      s.type === "FunctionDeclaration" && isHot((s.id as Node).name!) && !assignsTo(s, (s.id as Node).name!)
    ) {
      hoisted.push(`var ${(s.id as Node).name}=(${innerEager(js, s)});`);
      edits.push([s.start, s.end, ""]);
    }
    if (s.type !== "VariableDeclaration" || esm === null) continue;
    for (const d of s.declarations as Node[]) {
      const c = d.init as Node | null;
      if (c?.type !== "CallExpression" || (c.callee as Node).name !== esm) continue;
      const f = (c.arguments as Node[])[0];
      if (f?.type !== "ArrowFunctionExpression" || (f.params as Node[]).length !== 0) continue;
      const body = f.body as Node;
      if (body.type !== "BlockStatement") continue;
      const own = [...walk(body, false)];
      if (own.some((n) => n.type === "Identifier" && n.name === "arguments")) continue;
      const namesHot = own.some((n) => {
        const f = (n.arguments as Node[] | undefined)?.[0];
        return n.type === "CallExpression" && (n.callee as Node).name === keep && f?.type === "Identifier" &&
          isHot(f.name!);
      });
      if (!namesHot) continue;
      edits.push([f.start, f.end, `(function()${innerEager(js, body)})`]);
      inits++;
    }
  }
  edits.sort((a, b) => a[0] - b[0]);
  let out = "", at = 0;
  for (const [start, end, t] of edits) {
    out += js.slice(at, start) + t;
    at = end;
  }
  out += js.slice(at);
  return {
    js: hoisted.length === 0 ? out : `${hoisted.join("\n")}\n${out}`,
    functions: hoisted.length,
    inits,
  };
}

/** The hot names: `tools/pack/hot_functions.txt`'s lines, less blank ones and comments. */
export function readHot(path: string): Set<string> {
  return new Set(
    Deno.readTextFileSync(path).split("\n").map((l) => l.trim()).filter((l) =>
      l !== "" && !l.startsWith("#")
    ),
  );
}
