// Kernel module tables: modules.dep / modules.softdep codecs, module-name normalisation and the
// dependency closure in load order. Pure text in, text out; reading files is the caller's job.

/** One module as depmod sees it. */
export interface ModuleRec {
  /** Normalised name (underscores, no suffix). */
  name: string;
  /** Path relative to lib/modules/VER, e.g. "kernel/drivers/net/virtio_net.ko". */
  path: string;
  /** Hard dependencies (names), as listed. */
  depends: string[];
  /** softdep "pre:"/"post:" entries: module names or aliases (e.g. "crypto-crc32c"). */
  softPre: string[];
  softPost: string[];
  /** modalias patterns the module serves. */
  aliases: string[];
}

export type ModuleTable = Map<string, ModuleRec>;

const SUFFIX = /\.ko(\.(xz|zst|gz))?$/;

/** "kernel/drivers/net/virtio-net.ko.zst" or "virtio-net" → "virtio_net". */
export function moduleName(pathOrName: string): string {
  const base = pathOrName.slice(pathOrName.lastIndexOf("/") + 1);
  return base.replace(SUFFIX, "").replace(/-/g, "_");
}

export function isModuleFile(path: string): boolean {
  return SUFFIX.test(path);
}

function rec(name: string, path: string): ModuleRec {
  return { name, path, depends: [], softPre: [], softPost: [], aliases: [] };
}

/** Parse modules.dep ("path: dep-path dep-path ..."). Depmod lists the full transitive set per line. */
export function parseModulesDep(text: string): ModuleTable {
  const t: ModuleTable = new Map();
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    if (colon < 0) throw new Error(`modules.dep: line without ':': ${line}`);
    const path = line.slice(0, colon).trim();
    const r = rec(moduleName(path), path);
    r.depends = line.slice(colon + 1).trim().split(/\s+/).filter(Boolean).map(moduleName);
    t.set(r.name, r);
  }
  return t;
}

/** Parse modules.softdep lines ("softdep ext4 pre: crypto-crc32c post: x") into the table. */
export function applySoftdeps(t: ModuleTable, text: string): void {
  for (const raw of text.split("\n")) {
    const w = raw.trim().split(/\s+/);
    if (w[0] !== "softdep" || w.length < 3) continue;
    const r = t.get(moduleName(w[1]!));
    if (!r) continue;
    parseSoftdepWords(r, w.slice(2));
  }
}

/** "pre: a b post: c" (modinfo softdep= value or a modules.softdep tail) into a record. */
export function parseSoftdepWords(r: ModuleRec, words: string[]): void {
  let into: string[] | undefined;
  for (const x of words) {
    if (x === "pre:") into = r.softPre;
    else if (x === "post:") into = r.softPost;
    else if (into && x) into.push(x);
  }
}

export class UnknownModuleError extends Error {}

/**
 * Modules to load, dependencies first, for the requested names: hard deps, and soft "pre:"
 * deps before / "post:" deps after when they can be resolved (a softdep naming something that is
 * built in or absent is not an error). `resolveSoft` maps a softdep word (name or alias) to modules.
 * Requested names that are `builtin` are skipped.
 */
export function loadOrder(
  t: ModuleTable,
  names: string[],
  opts: { builtin?: Set<string>; resolveSoft?: (word: string) => string[]; soft?: boolean } = {},
): string[] {
  const out: string[] = [];
  const done = new Set<string>();
  const active = new Set<string>();
  const soft = (w: string) => {
    const n = moduleName(w);
    if (t.has(n)) return [n];
    return opts.resolveSoft ? opts.resolveSoft(w).filter((m) => t.has(m)) : [];
  };
  const visit = (name: string, from?: string) => {
    if (done.has(name) || active.has(name)) return; // cycles: kernel forbids them; do not loop
    const r = t.get(name);
    if (!r) {
      if (opts.builtin?.has(name)) return;
      throw new UnknownModuleError(from ? `module ${from} depends on ${name}, which is missing` : `unknown module ${name}`);
    }
    active.add(name);
    if (opts.soft !== false) for (const w of r.softPre) for (const m of soft(w)) visit(m);
    for (const d of r.depends) visit(d, name);
    active.delete(name);
    done.add(name);
    out.push(name);
    if (opts.soft !== false) for (const w of r.softPost) for (const m of soft(w)) visit(m);
  };
  for (const n of names) visit(moduleName(n));
  return out;
}

/**
 * modules.dep text for `names` (default all), in depmod's format: each line lists the module's full
 * hard-dependency closure so that loading the list from its end backwards satisfies every module.
 */
export function formatModulesDep(t: ModuleTable, names?: Iterable<string>): string {
  const chosen = [...(names ?? t.keys())].map((n) => t.get(n)!).filter(Boolean);
  chosen.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  let s = "";
  for (const r of chosen) {
    const order = loadOrder(t, [r.name], { soft: false }).slice(0, -1).reverse();
    s += `${r.path}:${order.map((n) => " " + t.get(n)!.path).join("")}\n`;
  }
  return s;
}

/** modules.softdep text for modules that have soft dependencies. */
export function formatModulesSoftdep(t: ModuleTable, names?: Iterable<string>): string {
  const chosen = [...(names ?? t.keys())].sort();
  let s = "";
  for (const n of chosen) {
    const r = t.get(n);
    if (!r || (!r.softPre.length && !r.softPost.length)) continue;
    s += `softdep ${n}`;
    if (r.softPre.length) s += ` pre: ${r.softPre.join(" ")}`;
    if (r.softPost.length) s += ` post: ${r.softPost.join(" ")}`;
    s += "\n";
  }
  return s;
}

/** modules.alias text ("alias PATTERN NAME") for `names` (default all), sorted by module then file order. */
export function formatModulesAlias(t: ModuleTable, names?: Iterable<string>): string {
  const chosen = [...(names ?? t.keys())].sort();
  let s = "";
  for (const n of chosen) for (const a of t.get(n)?.aliases ?? []) s += `alias ${a} ${n}\n`;
  return s;
}

/** Names listed in modules.builtin ("kernel/crypto/crc32c_generic.ko" per line). */
export function parseModulesBuiltin(text: string): Set<string> {
  return new Set(text.split("\n").map((l) => l.trim()).filter(Boolean).map(moduleName));
}
