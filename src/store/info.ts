// Index summary for `inetboot info` (pure data; the command formats it).
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { chunkPath } from "./chunk-name.ts";
import { digestAt, isZeroDigest, summarize } from "./format.ts";
import { loadStore } from "./open.ts";

export interface StoreInfo {
  where: string;
  version: number;
  imageSize: number;
  chunkSize: number;
  chunks: number;
  zero: number;
  unique: number;
  indexBytes: number;
  /** total size of the chunk files the image uses (local stores only) */
  storedBytes?: number;
}

export async function storeInfo(spec: string): Promise<StoreInfo> {
  const { index, location, indexBytes } = await loadStore(spec, { deadlineMs: 3000 });
  const s = summarize(index);
  const info: StoreInfo = {
    where: location.kind === "dir" ? join(location.dir, location.indexName) : location.bases[0] + location.indexName,
    version: index.version,
    imageSize: index.imageSize,
    chunkSize: index.chunkSize,
    chunks: s.chunks,
    zero: s.zero,
    unique: s.unique,
    indexBytes,
  };
  if (location.kind === "dir") {
    const seen = new Set<string>();
    let total = 0;
    for (let i = 0; i < s.chunks; i++) {
      const d = digestAt(index, i);
      if (isZeroDigest(d)) continue;
      const hex = d.toHex();
      if (seen.has(hex)) continue;
      seen.add(hex);
      total += (await stat(join(location.dir, chunkPath(hex))).catch(() => ({ size: 0 }))).size;
    }
    info.storedBytes = total;
  }
  return info;
}

export function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  let v = n;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}
