// Walks a persistent block cache as the agent's disk cache writes it (see store/fetcher/diskcache.ts):
//   CACHE/chunks/ab/<sha256>.zst   chunk entries
//   CACHE/indexes/<sha256>.index   last verified index of each store URL
//   CACHE/files/<sha256>           kernels and initrds of manifest entries (boot/payload-cache.ts)
//   *.tmp-PID-N, files/*.tmp-PID   a write that never got renamed (power cut)
// CACHE may be given as the cache folder itself, the folder holding it (a stick's mount point with
// inetboot-cache/), or a store dir (same chunks/ layout).
import { existsSync } from "node:fs";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { CACHE_ENTRY_NAME } from "../store/fetcher/diskcache.ts";
import { CHUNKS_DIR } from "../store/chunk-name.ts";
import { INDEXES_DIR } from "../store/fetcher/indexcache.ts";
import { UserError } from "../sys/errors.ts";
import { PAYLOADS_DIR } from "../boot/payload-cache.ts";

export const CACHE_FOLDER = "inetboot-cache";
const FANOUT = /^[0-9a-f]{2}$/;
const TMP = /\.tmp-\d+-\d+$/;
const PAYLOAD_NAME = /^[0-9a-f]{64}$/;
const PAYLOAD_TMP = /^[0-9a-f]{64}\.tmp-\d+$/;

export interface CacheFile {
  path: string;
  bytes: number;
  /** last use: the later of atime and mtime (FAT keeps access dates only, so mtime breaks ties) */
  usedMs: number;
  mtimeMs: number;
}

export interface CacheEntry extends CacheFile {
  hex: string;
}

export interface CacheScan {
  /** the cache folder actually walked */
  dir: string;
  chunks: CacheEntry[];
  /** kernels and initrds, named by their SHA-256 (evicted like chunks: refetched when needed) */
  payloads: CacheEntry[];
  indexes: CacheFile[];
  /** leftovers of interrupted writes */
  tmp: CacheFile[];
  /** files that are none of the above (reported, never deleted) */
  other: string[];
}

/** The cache folder for what the user named: DIR, or DIR/inetboot-cache. */
export function resolveCacheDir(dir: string): string {
  if (!existsSync(dir)) throw new UserError(`cache dir ${dir} not found`);
  if ([CHUNKS_DIR, INDEXES_DIR, PAYLOADS_DIR].some((d) => existsSync(join(dir, d)))) return dir;
  if (existsSync(join(dir, CACHE_FOLDER))) return join(dir, CACHE_FOLDER);
  return dir; // an empty (new) cache folder
}

async function fileInfo(path: string): Promise<CacheFile> {
  const st = await stat(path);
  return { path, bytes: st.size, usedMs: Math.max(st.atimeMs, st.mtimeMs), mtimeMs: st.mtimeMs };
}

async function list(dir: string): Promise<import("node:fs").Dirent[]> {
  return readdir(dir, { withFileTypes: true }).catch((e) => {
    if (e.code === "ENOENT") return [];
    throw new UserError(`cannot read ${dir}: ${e.code ?? e.message}`);
  });
}

export async function scanCache(dirArg: string): Promise<CacheScan> {
  const dir = resolveCacheDir(dirArg);
  const scan: CacheScan = { dir, chunks: [], payloads: [], indexes: [], tmp: [], other: [] };
  const chunksDir = join(dir, CHUNKS_DIR);
  for (const fan of await list(chunksDir)) {
    const fanPath = join(chunksDir, fan.name);
    if (!fan.isDirectory() || !FANOUT.test(fan.name)) {
      scan.other.push(fanPath);
      continue;
    }
    for (const f of await list(fanPath)) {
      const p = join(fanPath, f.name);
      const m = CACHE_ENTRY_NAME.exec(f.name);
      if (f.isFile() && m && m[1]!.startsWith(fan.name)) scan.chunks.push({ hex: m[1]!, ...(await fileInfo(p)) });
      else if (f.isFile() && TMP.test(f.name)) scan.tmp.push(await fileInfo(p));
      else scan.other.push(p);
    }
  }
  const idxDir = join(dir, INDEXES_DIR);
  for (const f of await list(idxDir)) {
    const p = join(idxDir, f.name);
    if (f.isFile() && f.name.endsWith(".index")) scan.indexes.push(await fileInfo(p));
    else if (f.isFile() && TMP.test(f.name)) scan.tmp.push(await fileInfo(p));
    else scan.other.push(p);
  }
  const filesDir = join(dir, PAYLOADS_DIR);
  for (const f of await list(filesDir)) {
    const p = join(filesDir, f.name);
    if (f.isFile() && PAYLOAD_NAME.test(f.name)) scan.payloads.push({ hex: f.name, ...(await fileInfo(p)) });
    else if (f.isFile() && PAYLOAD_TMP.test(f.name)) scan.tmp.push(await fileInfo(p));
    else scan.other.push(p);
  }
  return scan;
}
