// `inetboot cache prune --max-size N`: least recently used chunks (and kernels/initrds) go first
// until the cache fits. Cached indexes stay (a few KiB each, and without them an offline boot
// cannot open its store); they count toward the size. Leftover tmp files are always removed.
import { rmdir, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { scanCache, type CacheEntry, type CacheScan } from "./scan.ts";
import { PAYLOADS_DIR } from "../boot/payload-cache.ts";

export interface PruneResult {
  scan: CacheScan;
  before: number;
  after: number;
  removed: CacheEntry[];
  tmpRemoved: number;
}

/** Oldest use first; ties (FAT's day-granular access dates) broken by modification time. */
export function lruOrder(chunks: CacheEntry[]): CacheEntry[] {
  return [...chunks].sort((a, b) => a.usedMs - b.usedMs || a.mtimeMs - b.mtimeMs || a.hex.localeCompare(b.hex));
}

/** The chunks to evict so that `total` drops to `maxBytes` or below. */
export function pickEvictions(chunks: CacheEntry[], total: number, maxBytes: number): CacheEntry[] {
  const out: CacheEntry[] = [];
  for (const c of lruOrder(chunks)) {
    if (total <= maxBytes) break;
    out.push(c);
    total -= c.bytes;
  }
  return out;
}

export async function pruneCache(dir: string, maxBytes: number, opts: { dryRun?: boolean } = {}): Promise<PruneResult> {
  const scan = await scanCache(dir);
  const sum = (xs: { bytes: number }[]) => xs.reduce((n, x) => n + x.bytes, 0);
  const before = sum(scan.chunks) + sum(scan.payloads) + sum(scan.indexes) + sum(scan.tmp);
  let after = before - sum(scan.tmp);
  const removed = pickEvictions([...scan.chunks, ...scan.payloads], after, maxBytes);
  after -= sum(removed);
  if (!opts.dryRun) {
    for (const t of scan.tmp) await unlink(t.path).catch(() => {});
    const dirs = new Set<string>();
    for (const c of removed) {
      await unlink(c.path);
      dirs.add(dirname(c.path));
    }
    for (const d of dirs) if (!d.endsWith(`/${PAYLOADS_DIR}`)) await rmdir(d).catch(() => {}); // only succeeds when empty
  }
  return { scan, before, after, removed, tmpRemoved: scan.tmp.length };
}
