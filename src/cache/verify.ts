// `inetboot cache verify`: every cached chunk must decompress and hash to its name (the disk
// cache's own check), every kernel/initrd must hash to its name, every cached index must pass its
// checksum. --fix deletes what fails, plus
// leftovers of interrupted writes, so the agent refetches those blocks.
import { readFile, unlink } from "node:fs/promises";
import { verifyCacheEntry } from "../store/fetcher/diskcache.ts";
import { decodeIndex } from "../store/format.ts";
import { scanCache, type CacheScan } from "./scan.ts";

export interface BadFile {
  path: string;
  reason: string;
}

export interface CacheVerifyResult {
  scan: CacheScan;
  checked: number;
  bad: BadFile[];
  /** paths deleted (--fix) */
  deleted: string[];
}

export async function verifyCache(
  dir: string,
  opts: { fix?: boolean; parallel?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<CacheVerifyResult> {
  const scan = await scanCache(dir);
  const bad: BadFile[] = [];
  const jobs: (() => Promise<void>)[] = [
    ...scan.chunks.map((c) => async () => {
      try {
        await verifyCacheEntry(c.hex, await readFile(c.path));
      } catch (e) {
        bad.push({ path: c.path, reason: (e as Error).message.split("\n")[0]! });
      }
    }),
    ...scan.payloads.map((f) => async () => {
      const hex = new Bun.CryptoHasher("sha256").update(await readFile(f.path)).digest("hex");
      if (hex !== f.hex) bad.push({ path: f.path, reason: `kernel/initrd ${f.hex.slice(0, 16)}…: digest mismatch` });
    }),
    ...scan.indexes.map((f) => async () => {
      try {
        decodeIndex(new Uint8Array(await readFile(f.path)));
      } catch (e) {
        bad.push({ path: f.path, reason: (e as Error).message.split("\n")[0]! });
      }
    }),
  ];
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < jobs.length) {
      await jobs[next++]!();
      opts.onProgress?.(++done, jobs.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.parallel ?? 4) }, worker));
  bad.sort((a, b) => a.path.localeCompare(b.path));
  const deleted: string[] = [];
  if (opts.fix) {
    for (const p of [...bad.map((b) => b.path), ...scan.tmp.map((t) => t.path)]) {
      await unlink(p);
      deleted.push(p);
    }
  }
  return { scan, checked: jobs.length, bad, deleted };
}
