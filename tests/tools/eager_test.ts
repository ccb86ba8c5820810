/**
 * tools/pack/eager.ts, the rewrite that has V8 compile the bundle's hot functions up front: the rewritten code does
 * what the original did (a function called before its declaration, names, module initializers, `this`), and the
 * committed list of hot functions names functions the bundle still has.
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { artifact, PROJECT, tempDir } from "../helpers.ts";
import { eagerHot, keptNames, readHot } from "../../tools/pack/eager.ts";

/** esbuild's shape: the keep-names helper, lazy module initializers, top-level functions, a late declaration. */
const BUNDLE = `var D=Object.defineProperty;var a=(e,t)=>D(e,"name",{value:t,configurable:!0});
var w=(e,t)=>()=>(e&&(t=e(e=0)),t);
var out=[];
var early=x(2);
function x(n){return [n].map(v=>y(v))[0]+1}
function y(n){return n*10}
function z(){return typeof this}
function self(){self=()=>"again";return "first"}
var C,I1,M1=w(()=>{a(x,"hot");a(y,"cold");C=class{m(){return 1}get g(){return 2}};I1=x(3)+":"+String(this)+":"+[1].map(async function(q){return q})[0].constructor.name+new C().m()+new C().g});
var I2,M2=w(()=>{a(z,"alsoHot");a(self,"selfish");I2=z()+self()+self()});
var M3=w(()=>{out.push(typeof arguments)});
M1();M2();
out.push(early,I1,I2,x.name,y.name,z.name,String(x.length));
export{out};
`;

async function run(js: string, dir: string, name: string): Promise<unknown> {
  Deno.writeTextFileSync(`${dir}/${name}.mjs`, js);
  return (await import(`file://${dir}/${name}.mjs`)).out;
}

Deno.test("eagerHot: the hot functions and their modules' initializers rewritten, and the bundle does what it did", async () => {
  using t = tempDir();
  const r = eagerHot(BUNDLE, new Set(["hot", "alsoHot", "selfish"]));
  assertEquals([r.functions, r.inits], [2, 2]);
  // Hoisted to the top, as parenthesized expressions: x is called before its declaration's place.
  assert(
    r.js.startsWith(
      "var x=(function x(n){return [n].map((v=>y(v)))[0]+1});\nvar z=(function z(){return typeof this});\n",
    ),
    r.js,
  );
  assertStringIncludes(r.js, "function y(n){return n*10}"); // not hot: left as it was
  // Inside the hot functions and initializers, function expressions are parenthesized too; methods are not.
  assertStringIncludes(r.js, "C=class{m(){return 1}get g(){return 2}}");
  assertStringIncludes(r.js, "[1].map((async function(q){return q}))");
  // Hot, but it assigns its own name, which a named function expression cannot: left as it was.
  assertStringIncludes(r.js, '\nfunction self(){self=()=>"again";return "first"}');
  assertStringIncludes(r.js, 'M1=w((function(){a(x,"hot")');
  assertStringIncludes(r.js, 'M2=w((function(){a(z,"alsoHot")');
  // An initializer that names `arguments` keeps its arrow (a function's own would differ).
  assertStringIncludes(r.js, "M3=w(()=>{out.push(typeof arguments)})");
  const before = await run(BUNDLE, t.path, "before");
  const after = await run(r.js, t.path, "after");
  assertEquals(after, before);
  assertEquals(before, [21, "31:undefined:Promise12", "undefinedfirstagain", "hot", "cold", "alsoHot", "1"]);
  assertEquals(eagerHot(BUNDLE, new Set()).js, BUNDLE);
});

Deno.test("the hot list names functions the bundle has, and dist's bundle has them compiled up front", () => {
  const hot = readHot(`${PROJECT}/tools/pack/hot_functions.txt`);
  assert(hot.size > 100, `${hot.size} hot functions`);
  const js = Deno.readTextFileSync(artifact().js);
  const { names } = keptNames(js);
  const kept = new Set(names.values());
  const gone = [...hot].filter((n) => !kept.has(n));
  assertEquals(gone, [], "names in tools/pack/hot_functions.txt the bundle no longer has: run deno task hot");
  // Every hot top-level function is a parenthesized expression in the bundle dist built.
  const eager = [...names].filter(([minified, name]) =>
    hot.has(name) &&
    [`var ${minified}=(function ${minified}(`, `var ${minified}=(async function ${minified}(`].some((d) =>
      js.includes(d)
    )
  );
  assert(eager.length >= hot.size, `${eager.length} of ${hot.size} hot functions compiled up front`);
});
