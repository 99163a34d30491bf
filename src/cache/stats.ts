// `inetboot cache stats`: what a cache holds, from file metadata only (no reads).
import { scanCache } from "./scan.ts";

export interface CacheStats {
  dir: string;
  chunks: number;
  /** bytes on disk (compressed) of chunk entries */
  chunkBytes: number;
  /** kernels and initrds (files/) */
  payloads: number;
  payloadBytes: number;
  indexes: number;
  indexBytes: number;
  tmp: number;
  other: number;
  /** oldest/newest last use of a chunk (ms since epoch), undefined when empty */
  oldestMs?: number;
  newestMs?: number;
}

export async function cacheStats(dir: string): Promise<CacheStats> {
  const s = await scanCache(dir);
  let oldestMs: number | undefined;
  let newestMs: number | undefined;
  for (const c of s.chunks) {
    if (oldestMs === undefined || c.usedMs < oldestMs) oldestMs = c.usedMs;
    if (newestMs === undefined || c.usedMs > newestMs) newestMs = c.usedMs;
  }
  return {
    dir: s.dir,
    chunks: s.chunks.length,
    chunkBytes: s.chunks.reduce((n, c) => n + c.bytes, 0),
    payloads: s.payloads.length,
    payloadBytes: s.payloads.reduce((n, c) => n + c.bytes, 0),
    indexes: s.indexes.length,
    indexBytes: s.indexes.reduce((n, c) => n + c.bytes, 0),
    tmp: s.tmp.length,
    other: s.other.length,
    oldestMs,
    newestMs,
  };
}
