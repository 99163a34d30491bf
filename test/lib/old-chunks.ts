// Another system's chunks in a cache folder, last used a month ago: what an eviction test fills a
// stick with before the boot under test makes room.
import { createHash, randomBytes } from "node:crypto";
import { mkdirSync, utimesSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

/** Writes `count` chunk entries of `bytes` random bytes under CACHE/chunks/ab/<sha256>.zst (zstd
 *  frames, valid entries); returns their file names. */
export function writeOldChunks(cacheDir: string, count: number, bytes: number): string[] {
  const monthAgo = Date.now() / 1000 - 30 * 86400;
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const data = randomBytes(bytes);
    const name = `${createHash("sha256").update(data).digest("hex")}.zst`;
    const p = join(cacheDir, "chunks", name.slice(0, 2), name);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, Bun.zstdCompressSync(data));
    utimesSync(p, monthAgo, monthAgo);
    names.push(name);
  }
  return names;
}
