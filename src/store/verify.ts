// Checks a whole store: index consistency, then every distinct chunk the index names is read,
// decompressed and hashed (digest = name, length = its place in the image). Reports missing and
// bad chunks separately. Reads go to the one location given (no mirror failover: we want to know
// what *this* copy holds).
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { chunkPath } from "./chunk-name.ts";
import { unpackChunk } from "./chunk.ts";
import { HttpError, HttpPool } from "./fetcher/pool.ts";
import { chunkLength, digestAt, isZeroDigest } from "./format.ts";
import { loadStore, type LoadedStore } from "./open.ts";

export interface ChunkProblem {
  hex: string;
  /** first chunk index (position in the image) that uses it */
  at: number;
  reason: string;
}

export interface VerifyResult {
  store: LoadedStore;
  checked: number;
  missing: ChunkProblem[];
  bad: ChunkProblem[];
}

export async function verifyStore(
  spec: string,
  opts: { parallel?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<VerifyResult> {
  const pool = new HttpPool({ maxParallel: opts.parallel ?? 8 });
  const store = await loadStore(spec, { pool, deadlineMs: 3000 });
  const { index, location } = store;
  const bad: ChunkProblem[] = [];
  const missing: ChunkProblem[] = [];
  // distinct digest → expected plain size and first position
  const want = new Map<string, { size: number; at: number }>();
  const n = index.digests.length / 32;
  for (let i = 0; i < n; i++) {
    const d = digestAt(index, i);
    if (isZeroDigest(d)) continue;
    const hex = d.toHex();
    const size = chunkLength(index, i);
    const prev = want.get(hex);
    if (!prev) want.set(hex, { size, at: i });
    else if (prev.size !== size)
      bad.push({ hex, at: i, reason: `index inconsistency: used with lengths ${prev.size} and ${size}` });
  }

  const read = async (hex: string): Promise<Uint8Array | null> => {
    if (location.kind === "dir") {
      return readFile(join(location.dir, chunkPath(hex))).catch((e) => {
        if (e.code === "ENOENT") return null;
        throw e;
      });
    }
    try {
      return await pool.get(location.bases[0] + chunkPath(hex));
    } catch (e) {
      if (e instanceof HttpError && e.status === 404) return null;
      throw e;
    }
  };

  const entries = [...want.entries()];
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < entries.length) {
      const [hex, { size, at }] = entries[next++]!;
      try {
        const packed = await read(hex);
        if (!packed) missing.push({ hex, at, reason: "missing" });
        else unpackChunk({ hex, size }, packed);
      } catch (e) {
        bad.push({ hex, at, reason: (e as Error).message.split("\n")[0]! });
      }
      done++;
      opts.onProgress?.(done, entries.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.parallel ?? 8) }, worker));
  bad.sort((a, b) => a.at - b.at);
  missing.sort((a, b) => a.at - b.at);
  return { store, checked: entries.length, missing, bad };
}
