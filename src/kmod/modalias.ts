// modules.alias codec and device-modalias matching with fnmatch(3) semantics (*, ?, [...]),
// the way modprobe resolves "pci:v00001AF4d00001000..." to virtio_pci. Patterns are bucketed by
// their literal prefix so ~30k aliases against ~100 devices stay cheap.

export interface Alias {
  pattern: string;
  module: string;
}

/** Parse "alias PATTERN MODULE" lines (comments and other keywords ignored). */
export function parseModulesAlias(text: string): Alias[] {
  const out: Alias[] = [];
  for (const raw of text.split("\n")) {
    const w = raw.trim().split(/\s+/);
    if (w[0] !== "alias" || w.length < 3) continue;
    out.push({ pattern: w[1]!, module: w[2]!.replace(/-/g, "_") });
  }
  return out;
}

/** fnmatch(pattern, s) without flags: * and ? match any character (including "/"), [...] a set. */
export function fnmatch(p: string, s: string): boolean {
  let pi = 0;
  let si = 0;
  let starP = -1; // position after the last '*' seen, for backtracking
  let starS = 0;
  while (si < s.length) {
    if (pi < p.length) {
      const c = p[pi]!;
      if (c === "*") {
        starP = ++pi;
        starS = si;
        continue;
      }
      if (c === "?") {
        pi++;
        si++;
        continue;
      }
      if (c === "[") {
        const r = matchClass(p, pi, s[si]!);
        if (r.end >= 0) {
          if (r.ok) {
            pi = r.end;
            si++;
            continue;
          }
        } else if (s[si] === "[") {
          // unterminated '[' is an ordinary character
          pi++;
          si++;
          continue;
        }
      } else {
        const lit = c === "\\" && pi + 1 < p.length ? p[pi + 1]! : c;
        if (lit === s[si]) {
          pi += c === "\\" && pi + 1 < p.length ? 2 : 1;
          si++;
          continue;
        }
      }
    }
    if (starP < 0) return false;
    pi = starP;
    si = ++starS;
  }
  while (pi < p.length && p[pi] === "*") pi++;
  return pi === p.length;
}

/** Match one char against the bracket expression starting at p[i] === "[". end = index after "]", or -1. */
function matchClass(p: string, i: number, ch: string): { ok: boolean; end: number } {
  let j = i + 1;
  const negate = p[j] === "!" || p[j] === "^";
  if (negate) j++;
  let ok = false;
  let first = true;
  while (j < p.length && (p[j] !== "]" || first)) {
    first = false;
    let lo = p[j]!;
    if (lo === "\\" && j + 1 < p.length) lo = p[++j]!;
    if (p[j + 1] === "-" && j + 2 < p.length && p[j + 2] !== "]") {
      let hi = p[j + 2]!;
      let k = j + 2;
      if (hi === "\\" && k + 1 < p.length) hi = p[++k]!;
      if (ch >= lo && ch <= hi) ok = true;
      j = k + 1;
    } else {
      if (ch === lo) ok = true;
      j++;
    }
  }
  if (j >= p.length) return { ok: false, end: -1 };
  return { ok: ok !== negate, end: j + 1 };
}

/** Characters before the first wildcard. */
export function literalPrefix(p: string): string {
  const m = /[*?[\\]/.exec(p);
  return m ? p.slice(0, m.index) : p;
}

/** Alias lookup table: modalias string → modules, in modules.alias order, without duplicates. */
export class AliasIndex {
  // Bucket key: the literal prefix up to and including the first ':' (the bus), or the whole
  // literal prefix when there is no ':' in it; patterns starting with a wildcard go to "".
  private buckets = new Map<string, Array<Alias & { prefix: string; order: number }>>();

  constructor(aliases: Alias[]) {
    aliases.forEach((a, order) => {
      const prefix = literalPrefix(a.pattern);
      const key = bucketKey(prefix);
      let b = this.buckets.get(key);
      if (!b) this.buckets.set(key, (b = []));
      b.push({ ...a, prefix, order });
    });
  }

  /**
   * Could any alias match a device on this bus? Modaliases start with the bus name and ':'
   * ("pci:v…", "virtio:d…"), so a bus no pattern can match need not be read at all: coldplug
   * under an emulated CPU spends its time reading sysfs files, not matching.
   */
  mayMatchBus(bus: string): boolean {
    const head = bus + ":";
    for (const key of this.buckets.keys()) {
      if (key === "" || key === head) return true;
      // a literal prefix without ':' ("pc", "virtio") may still be the start of this bus's aliases
      if (!key.includes(":") && head.startsWith(key)) return true;
    }
    return false;
  }

  lookup(modalias: string): string[] {
    const hits: Array<{ module: string; order: number }> = [];
    const keys = new Set(["", bucketKey(modalias)]);
    // Patterns with no ':' in their literal part are keyed by that part; try each prefix length.
    for (const [key, list] of this.buckets) {
      if (keys.has(key) || (!key.includes(":") && modalias.startsWith(key))) {
        for (const a of list) if (modalias.startsWith(a.prefix) && fnmatch(a.pattern, modalias)) hits.push(a);
      }
    }
    hits.sort((a, b) => a.order - b.order);
    return [...new Set(hits.map((h) => h.module))];
  }
}

function bucketKey(prefix: string): string {
  const c = prefix.indexOf(":");
  return c >= 0 ? prefix.slice(0, c + 1) : prefix;
}
