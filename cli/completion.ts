/**
 * `gpuctl completion bash|zsh`: a shell completion script, made from the same command table and help texts the
 * CLI prints, so that it cannot name an option the command does not have.
 * @module
 */
import { UsageError } from "../errors/mod.ts";
import type { Command, Context } from "./context.ts";
import { GLOBAL_OPTIONS } from "./globals.ts";

export const HELP = `Usage: gpuctl completion bash|zsh

Prints a completion script for the shell: commands, their subcommands and their options, taken from gpuctl's
own help texts.
  bash:  gpuctl completion bash > /etc/bash_completion.d/gpuctl      (or: source <(gpuctl completion bash))
  zsh:   gpuctl completion zsh > "\${fpath[1]}/_gpuctl"              (then: autoload -U compinit && compinit)
`;

/** Subcommands (first words after the command) the help texts' usage lines name. */
const SUBCOMMANDS: Readonly<Record<string, readonly string[]>> = {
  cdi: ["generate", "list", "transform-root"],
  configure: ["docker", "containerd", "crio"],
  system: ["create-device-nodes", "create-dev-char-symlinks"],
  hook: ["prestart"],
  config: ["default"],
  completion: ["bash", "zsh"],
};

export interface Words {
  commands: string[];
  subcommands: Record<string, readonly string[]>;
  options: Record<string, string[]>;
  globals: string[];
}

const OPTION = /(?<![\w-])--[a-z][a-z0-9.-]*[a-z0-9]/g;

/**
 * The options a help text offers, in order, once: those of its usage lines (the first paragraph), and those an
 * option line begins with (`  --output FILE   …`, `  -h, --help   …`). Options named in prose are not offered.
 */
export function optionsIn(help: string): string[] {
  const lines = help.split("\n");
  const end = lines.findIndex((l) => l.trim() === "");
  const found: string[] = [];
  lines.forEach((l, i) => {
    if (i < (end < 0 ? lines.length : end)) found.push(...[...l.matchAll(OPTION)].map((m) => m[0]));
    else if (/^\s*-/.test(l)) {
      // The option column: up to the first gap of two spaces.
      const head = l.trimStart().split(/\s{2,}/)[0]!;
      found.push(...[...head.matchAll(OPTION)].map((m) => m[0]));
    }
  });
  return [...new Set(found)];
}

/** The words to complete, from the command table and each command's help. */
export async function completionWords(table: Readonly<Record<string, Command>>): Promise<Words> {
  const commands = [...Object.entries(table).filter(([, c]) => !c.hidden).map(([n]) => n), "help"].sort();
  const options: Record<string, string[]> = {};
  for (const name of commands) {
    const help = name === "help" ? "" : (await table[name]!.load()).HELP ?? "";
    options[name] = optionsIn(help);
  }
  const subcommands: Record<string, readonly string[]> = {
    ...SUBCOMMANDS,
    help: commands.filter((c) => c !== "help"),
  };
  const globals = optionsIn(`
${GLOBAL_OPTIONS}`);
  return { commands, subcommands, options, globals };
}

const words = (list: readonly string[]) => list.join(" ");

export function bashScript(w: Words): string {
  const cases = w.commands.map((c) =>
    `    ${c}) subs="${words(w.subcommands[c] ?? [])}"; opts="${words(w.options[c] ?? [])}" ;;`
  ).join("\n");
  return `# bash completion for gpuctl (gpuctl completion bash)
_gpuctl() {
  local cur cmd="" i subs="" opts=""
  cur="\${COMP_WORDS[COMP_CWORD]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "\${COMP_WORDS[i]}" in
    --config | --log-level | --log-format) ((i++)) ;;
    -*) ;;
    *) cmd="\${COMP_WORDS[i]}"; break ;;
    esac
  done
  if [ -z "$cmd" ]; then
    COMPREPLY=($(compgen -W "${words(w.commands)} ${words(w.globals)}" -- "$cur"))
    return
  fi
  case "$cmd" in
${cases}
  esac
  if [[ "$cur" == -* ]] || [ $((COMP_CWORD - i)) -gt 1 ] || [ -z "$subs" ]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$subs $opts" -- "$cur"))
  fi
}
complete -F _gpuctl gpuctl
`;
}

export function zshScript(w: Words): string {
  const cases = w.commands.map((c) =>
    `    ${c}) subs=(${words(w.subcommands[c] ?? [])}); opts=(${words(w.options[c] ?? [])}) ;;`
  ).join("\n");
  return `#compdef gpuctl
# zsh completion for gpuctl (gpuctl completion zsh)
_gpuctl() {
  local -a subs opts
  if (( CURRENT == 2 )); then
    compadd -- ${words(w.commands)} ${words(w.globals)}
    return
  fi
  case "$words[2]" in
${cases}
  esac
  if (( CURRENT == 3 )) && [[ "$PREFIX" != -* ]]; then
    compadd -- $subs $opts
  else
    compadd -- $opts
  fi
}
compdef _gpuctl gpuctl
`;
}

export async function run(ctx: Context, args: string[]): Promise<number> {
  if (args[0] === "-h" || args[0] === "--help") {
    ctx.out(HELP);
    return 0;
  }
  const shell = args[0];
  if (args.length !== 1 || (shell !== "bash" && shell !== "zsh")) {
    throw new UsageError("completion", "name the shell: bash or zsh");
  }
  const w = await completionWords(ctx.commands);
  ctx.out(shell === "bash" ? bashScript(w) : zshScript(w));
  return 0;
}
