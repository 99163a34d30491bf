// A kernel's module tree on disk (DIR/lib/modules/VER): the module table from modules.dep when
// depmod has run, else derived from each module's .modinfo section (depends=, alias=, softdep=),
// which is what depmod itself would compute for in-tree modules. Debian's linux-image package ships
// no modules.dep, so the derived path is the common one here.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../sys/errors.ts";
import { bytesReader, parseModinfo, readSection, withFileReader, type ReadAt } from "../initramfs/elf.ts";
import { AliasIndex, parseModulesAlias } from "./modalias.ts";
import { applySoftdeps, isModuleFile, moduleName, parseModulesBuiltin, parseModulesDep, parseSoftdepWords, type ModuleTable } from "./modules-dep.ts";

export interface KernelModules {
  /** DIR/lib/modules/VER */
  dir: string;
  version: string;
  table: ModuleTable;
  builtin: Set<string>;
  aliases: AliasIndex;
  /** "modules.dep" when depmod output was used, "modinfo" when derived. */
  source: "modules.dep" | "modinfo";
}

/** The single entry in DIR/lib/modules, or an error saying what is there. */
export function detectKernelVersion(kernelDir: string): string {
  const base = join(kernelDir, "lib/modules");
  if (!existsSync(base)) throw new UserError(`no lib/modules in kernel dir ${kernelDir}`);
  const vers = readdirSync(base).filter((v) => statSync(join(base, v)).isDirectory()).sort();
  if (vers.length !== 1) {
    throw new UserError(`${base} holds ${vers.length ? vers.join(", ") : "no kernel versions"}: pass --kver`);
  }
  return vers[0]!;
}

/** Every module file under the tree, as paths relative to it, sorted (build/ and source/ links skipped). */
export function listModuleFiles(modDir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(join(modDir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(r);
      else if (e.isFile() && isModuleFile(e.name)) out.push(r);
    }
  };
  for (const e of readdirSync(modDir, { withFileTypes: true })) {
    if (e.isDirectory() && e.name !== "build" && e.name !== "source") walk(e.name);
  }
  return out.sort();
}

/** The .modinfo key/value pairs of one module file (.ko, .ko.zst, .ko.gz; .ko.xz is not supported). */
export function readModinfo(file: string): Array<[string, string]> {
  const fromReader = (read: ReadAt) => {
    const sec = readSection(read, ".modinfo", file);
    return sec ? parseModinfo(sec) : [];
  };
  if (file.endsWith(".ko")) return withFileReader(file, fromReader);
  const raw = readFileSync(file);
  let plain: Uint8Array;
  if (file.endsWith(".zst")) plain = Bun.zstdDecompressSync(raw);
  else if (file.endsWith(".gz")) plain = Bun.gunzipSync(raw);
  else throw new UserError(`${file}: xz-compressed modules are not supported; unpack them first`);
  return fromReader(bytesReader(plain));
}

/** Build the module table of a tree from .modinfo sections (what depmod would write). */
export function deriveModuleTable(modDir: string): ModuleTable {
  const t: ModuleTable = new Map();
  for (const path of listModuleFiles(modDir)) {
    const info = readModinfo(join(modDir, path));
    const name = moduleName(info.find(([k]) => k === "name")?.[1] ?? path);
    if (t.has(name)) continue; // first in sorted order wins, like a deterministic depmod
    const r = { name, path, depends: [] as string[], softPre: [] as string[], softPost: [] as string[], aliases: [] as string[] };
    for (const [k, v] of info) {
      if (k === "depends") r.depends.push(...v.split(",").filter(Boolean).map(moduleName));
      else if (k === "alias") r.aliases.push(v);
      else if (k === "softdep") parseSoftdepWords(r, v.split(/\s+/));
    }
    t.set(name, r);
  }
  return t;
}

/** Load a kernel's modules: depmod's files when present, else derived from .modinfo. */
export function loadKernelModules(kernelDir: string, version?: string): KernelModules {
  const ver = version ?? detectKernelVersion(kernelDir);
  const dir = join(kernelDir, "lib/modules", ver);
  if (!existsSync(dir)) throw new UserError(`no modules for kernel ${ver} in ${kernelDir} (looked for ${dir})`);
  const builtinFile = join(dir, "modules.builtin");
  const builtin = existsSync(builtinFile) ? parseModulesBuiltin(readFileSync(builtinFile, "utf8")) : new Set<string>();
  const depFile = join(dir, "modules.dep");
  let table: ModuleTable;
  let source: KernelModules["source"];
  if (existsSync(depFile)) {
    table = parseModulesDep(readFileSync(depFile, "utf8"));
    const soft = join(dir, "modules.softdep");
    if (existsSync(soft)) applySoftdeps(table, readFileSync(soft, "utf8"));
    const aliasFile = join(dir, "modules.alias");
    if (existsSync(aliasFile)) {
      for (const a of parseModulesAlias(readFileSync(aliasFile, "utf8"))) table.get(a.module)?.aliases.push(a.pattern);
    }
    source = "modules.dep";
  } else {
    table = deriveModuleTable(dir);
    source = "modinfo";
  }
  const aliases = new AliasIndex([...table.values()].flatMap((r) => r.aliases.map((pattern) => ({ pattern, module: r.name }))));
  return { dir, version: ver, table, builtin, aliases, source };
}
