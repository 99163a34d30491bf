// Option handling citty lacks. Unknown options are refused up front: citty ignores them, so a typo
// (`--cach DIR`) would silently serve without the cache the user asked for. Repeatable options
// are collected from the raw arguments: citty keeps only the last. Pure: tested in
// test/unit/cli-options.test.ts.
import { parseArgs, type ArgsDef } from "citty";
import { UserError } from "../sys/errors.ts";
import { useNetrcFile } from "../fetch/netrc.ts";
import { useCaFile } from "../fetch/trust.ts";

export interface OptionDef {
  type?: string;
  alias?: string | string[];
}

const kebab = (s: string) => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** The first option in `tokens` (a command's arguments, after its name) that `defs` does not
 *  declare, as written ("--cach"); null when all are known. `--no-X` negates a boolean X; a
 *  string option given without `=` takes the next token as its value; after `--` all is positional. */
export function unknownOption(defs: Record<string, OptionDef>, tokens: string[]): string | null {
  const byName = new Map<string, OptionDef>();
  const shorts = new Map<string, OptionDef>();
  for (const [name, d] of Object.entries(defs)) {
    if (d.type === "positional") continue;
    byName.set(name, d);
    byName.set(kebab(name), d);
    for (const a of d.alias === undefined ? [] : Array.isArray(d.alias) ? d.alias : [d.alias]) (a.length === 1 ? shorts : byName).set(a, d);
  }
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === "--") break;
    if (!t.startsWith("-") || t === "-" || /^-\d/.test(t)) continue;
    if (t.startsWith("--")) {
      const eq = t.indexOf("=");
      const name = t.slice(2, eq < 0 ? undefined : eq);
      let d = byName.get(name);
      if (!d && name.startsWith("no-")) {
        const neg = byName.get(name.slice(3));
        if (neg?.type === "boolean") d = neg;
      }
      if (!d) return eq < 0 ? t : t.slice(0, eq);
      if (d.type === "string" && eq < 0) i++;
      continue;
    }
    // -abc: short aliases, the last may be a string option taking the next token
    const letters = t.slice(1);
    for (const c of letters) if (!shorts.has(c)) return `-${c}`;
    if (shorts.get(letters[letters.length - 1]!)?.type === "string") i++;
  }
  return null;
}

// Last positionals that take every remaining word (see restPositional); by identity, as the
// commands' argument objects are the ones main.ts reads.
const restDefs = new WeakSet<object>();

/** Marks a command's last positional as taking all remaining words (`cmdline ip=dhcp root=…`),
 *  so extraArgument lets them through; the command joins them itself (its `args._`). */
export function restPositional<T extends object>(def: T): T {
  restDefs.add(def);
  return def;
}

/** The first positional argument in `tokens` beyond those `defs` declare, parsed as citty parses
 *  them (which drops it silently: `info STORE extra` would run); null when there is none. */
export function extraArgument(defs: Record<string, OptionDef>, tokens: string[]): string | null {
  const declared = Object.values(defs).filter((d) => d.type === "positional");
  if (declared.some((d) => restDefs.has(d))) return null;
  let words: string[];
  try {
    words = parseArgs(tokens, defs as ArgsDef)._;
  } catch {
    return null; // a missing argument: citty names it when the command runs
  }
  return words[declared.length] ?? null;
}

/** citty keeps only the last of a repeated option; collect every `--NAME V` / `--NAME=V` from the raw argv. */
export function collectRepeated(raw: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i++) {
    const a = raw[i]!;
    if (a === "--") break;
    if (a === `--${name}`) {
      const v = raw[i + 1];
      if (v === undefined || v.startsWith("--")) throw new UserError(`--${name} needs a value`);
      out.push(v);
      i++;
    } else if (a.startsWith(`--${name}=`)) out.push(a.slice(name.length + 3));
  }
  return out;
}

/** `--ca FILE`, the same in every command that may read https:// (applied with useCaFile in
 *  src/fetch/trust.ts). */
export const CA_OPTION = {
  type: "string",
  description: "PEM file of extra CA certificates to trust for https:// (besides Bun's built-in ones; env INETBOOT_CA_FILE)",
} as const;

/** `--netrc FILE`, the same in every command that may read a store or file over HTTP (applied with
 *  useNetrcFile in src/fetch/netrc.ts). */
export const NETRC_OPTION = {
  type: "string",
  description: "netrc file with the user and password for each host (machine HOST login USER password PASS; env INETBOOT_NETRC), instead of USER:PASSWORD@ in URLs",
} as const;

/** The options of every command that reads URLs: `--ca` and `--netrc`. */
export const URL_OPTIONS = { ca: CA_OPTION, netrc: NETRC_OPTION } as const;

/** Applies `--ca` and `--netrc` for this process; a bad file is an error before any request. */
export function useUrlOptions(a: { ca?: unknown; netrc?: unknown }): void {
  useCaFile(a.ca as string | undefined);
  useNetrcFile(a.netrc as string | undefined);
}
