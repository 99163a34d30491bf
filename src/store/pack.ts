// Packs a disk image into a content-addressed store: reads the image chunk by chunk (memory stays
// flat: at most WINDOW chunks in flight), hashes on the main thread (SHA-256 runs ~2.5 GB/s here)
// and compresses with Bun's async zstd, which runs on Bun's thread pool, so both cores work
// without Workers. Chunk files and the index are written as tmp + rename, chunks first, so a
// published index never names a missing chunk and a crash leaves no half-written file.
import { mkdir, open, stat, type FileHandle } from "node:fs/promises";
import { writeAtomic } from "./atomic.ts";
import { closeSync, existsSync, openSync, readdirSync, rmSync, unlinkSync } from "node:fs";
import { basename, join } from "node:path";
import { syncfs } from "../sys/ffi.ts";
import { bootPackNameFor } from "./bootpack.ts";
import { profileNameFor } from "./profile.ts";
import { zstdDeclaredSize } from "./zstd-raw.ts";
import { UserError } from "../sys/errors.ts";
import { chunkPath, indexFileName, isAllZero, sha256 } from "./chunk-name.ts";
import { DEFAULT_CHUNK_SIZE, DIGEST_LEN, chunkShift, encodeIndex, IndexError } from "./format.ts";

export interface PackOptions {
  chunkSize?: number;
  /** image name: the index becomes NAME.index so several images share one chunks/ dir */
  name?: string;
  /** zstd level (1 = fastest; default 2) */
  level?: number;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
}

export interface PackResult {
  indexPath: string;
  imageSize: number;
  chunkSize: number;
  chunks: number;
  /** chunk files newly written by this run */
  stored: number;
  /** non-zero chunks already present (in the store, or earlier in this image) */
  deduplicated: number;
  zero: number;
  /** plain and compressed bytes of the newly written chunks */
  newPlainBytes: number;
  newStoredBytes: number;
  /** chunk files that were there but damaged (empty, or not a frame of this chunk's size), written again */
  repaired: number;
  /** an index was there already (another image, or an older version of this one) and was replaced */
  replacedIndex: boolean;
  /** a boot profile and boot pack published for the replaced index: they no longer match */
  stale: string[];
}

const WINDOW = 16;

export async function packImage(imagePath: string, storeDir: string, opts: PackOptions = {}): Promise<PackResult> {
  const chunkSize = opts.chunkSize ?? DEFAULT_CHUNK_SIZE;
  try {
    chunkShift(chunkSize);
  } catch (e) {
    throw new UserError((e as IndexError).message);
  }
  const level = opts.level ?? 2;
  if (!Number.isInteger(level) || level < 1 || level > 22) throw new UserError(`bad zstd level ${level} (1..22)`);
  let indexName: string;
  try {
    indexName = indexFileName(opts.name);
  } catch (e) {
    throw new UserError((e as Error).message);
  }

  // "-" is standard input: `zstd -dc disk.img.zst | inetboot pack - STORE` needs no temporary copy.
  const stdin = imagePath === "-";
  const source = stdin ? "/dev/stdin" : imagePath;
  const shown = stdin ? "standard input" : imagePath;
  if (stdin && process.stdin.isTTY) throw new UserError("image -: standard input is a terminal (pipe an image into it)");
  const st = await stat(source).catch(() => null);
  if (!st) throw new UserError(`image not found: ${shown}`);
  if (st.isDirectory()) throw new UserError(`image is a directory: ${shown}`);
  // A pipe is read in order (it cannot seek); its size, like a block device's, is not known ahead.
  const sequential = !st.isFile() && !st.isBlockDevice();
  const totalHint = st.isFile() ? st.size : 0;

  // A store this run creates goes again if the run fails (an empty or unreadable image, a full
  // disk): no empty STORE/chunks/ left behind to puzzle over.
  const created = !existsSync(storeDir);
  try {
    return await packInto(storeDir, source, shown, sequential, totalHint, indexName, chunkSize, level, opts);
  } catch (e) {
    if (created) rmSync(storeDir, { recursive: true, force: true });
    throw e;
  }
}

async function packInto(
  storeDir: string, source: string, shown: string, sequential: boolean, totalHint: number,
  indexName: string, chunkSize: number, level: number, opts: PackOptions,
): Promise<PackResult> {
  await mkdir(join(storeDir, "chunks"), { recursive: true }).catch((e) => {
    throw new UserError(`cannot create store ${storeDir}: ${(e as Error).message}`);
  });
  const madeDirs = new Set<string>();
  // Digests this run already handled (written or found present), so duplicates inside one image
  // are counted and written once even while the first copy is still being compressed.
  const seen = new Map<string, Promise<void>>();

  const fh = await open(source, "r").catch((e) => {
    throw new UserError(`cannot open image ${shown}: ${(e as Error).message}`);
  });
  const digests: Uint8Array[] = [];
  const res: PackResult = {
    indexPath: join(storeDir, indexName),
    imageSize: 0,
    chunkSize,
    chunks: 0,
    stored: 0,
    deduplicated: 0,
    zero: 0,
    newPlainBytes: 0,
    newStoredBytes: 0,
    repaired: 0,
    replacedIndex: false,
    stale: [],
  };
  const inflight = new Set<Promise<void>>();
  let failure: unknown = null;

  const storeChunk = async (hex: string, plain: Uint8Array) => {
    const rel = chunkPath(hex);
    const path = join(storeDir, rel);
    const there = await looksWhole(path, plain.length);
    if (there) {
      res.deduplicated++;
      return;
    }
    if (there === false) res.repaired++;
    const dir = join(storeDir, rel.slice(0, rel.lastIndexOf("/")));
    if (!madeDirs.has(dir)) {
      await mkdir(dir, { recursive: true });
      madeDirs.add(dir);
    }
    const packed = await Bun.zstdCompress(plain, { level });
    await writeAtomic(path, packed);
    res.stored++;
    res.newPlainBytes += plain.length;
    res.newStoredBytes += packed.length;
  };

  let lastProgress = 0;
  try {
    let offset = 0;
    for (;;) {
      if (failure) throw failure;
      const buf = new Uint8Array(chunkSize);
      let got = 0;
      while (got < chunkSize) {
        const { bytesRead } = await fh.read(buf, got, chunkSize - got, sequential ? null : offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got === 0) break;
      const plain = got === chunkSize ? buf : buf.subarray(0, got);
      offset += got;
      res.chunks++;
      if (isAllZero(plain)) {
        res.zero++;
        digests.push(new Uint8Array(DIGEST_LEN));
      } else {
        const d = sha256(plain);
        digests.push(d);
        const hex = d.toHex();
        if (seen.has(hex)) res.deduplicated++;
        else {
          const p = storeChunk(hex, plain).catch((e) => {
            failure ??= e;
          });
          seen.set(hex, p);
          inflight.add(p);
          p.finally(() => inflight.delete(p));
          if (inflight.size >= WINDOW) await Promise.race(inflight);
        }
      }
      const now = performance.now();
      if (opts.onProgress && now - lastProgress > 200) {
        lastProgress = now;
        opts.onProgress(offset, totalHint && Math.max(totalHint, offset)); // 0: not known
      }
      if (got < chunkSize) break;
    }
    await Promise.all(inflight);
    if (failure) throw failure;
    res.imageSize = offset;
  } finally {
    await fh.close();
  }
  if (res.imageSize === 0) throw new UserError(`image is empty: ${shown}`);
  opts.onProgress?.(res.imageSize, res.imageSize);

  const all = new Uint8Array(digests.length * DIGEST_LEN);
  digests.forEach((d, i) => all.set(d, i * DIGEST_LEN));
  // The chunks reach the disk before the index that names them: after a power cut the index is
  // either the old one or one whose chunks are all there (the index alone is fsynced below).
  if (res.stored > 0) flushFilesystem(storeDir);
  if (existsSync(res.indexPath)) {
    res.replacedIndex = true;
    const name = basename(res.indexPath);
    res.stale = [profileNameFor(name), bootPackNameFor(name)].map((n) => join(storeDir, n)).filter((p) => existsSync(p));
  }
  await writeAtomic(res.indexPath, encodeIndex({ version: 1, imageSize: res.imageSize, chunkSize, digests: all }), true);
  return res;
}

/** Is the chunk file there and whole-looking? null: absent; false: there but damaged (empty, cut
 *  before its frame header, or a frame of another size), so it is written again. Only the header
 *  is read: a full check of every byte is `inetboot verify`. */
async function looksWhole(path: string, plainLen: number): Promise<boolean | null> {
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch {
    return null;
  }
  try {
    const head = new Uint8Array(18);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    return zstdDeclaredSize(head.subarray(0, bytesRead)) === plainLen;
  } finally {
    await fh.close();
  }
}

function flushFilesystem(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    syncfs(fd, `syncfs(${dir})`);
  } finally {
    closeSync(fd);
  }
}

/** Removes the tmp files a pack run of process `pid` left in the store (Ctrl-C mid-write: the
 *  chunk files themselves are renamed into place whole, or not at all). */
export function removePackTemps(storeDir: string, pid = process.pid): void {
  const mine = new RegExp(`\\.tmp-${pid}-\\d+$`);
  const dirs = [storeDir, ...(() => {
    try {
      return readdirSync(join(storeDir, "chunks")).map((d) => join(storeDir, "chunks", d));
    } catch {
      return [];
    }
  })()];
  for (const d of dirs) {
    let names: string[];
    try {
      names = readdirSync(d);
    } catch {
      continue;
    }
    for (const n of names) if (mine.test(n)) try {
      unlinkSync(join(d, n));
    } catch {}
  }
}
