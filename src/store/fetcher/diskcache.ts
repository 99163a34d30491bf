// Persistent chunk cache (e.g. inetboot-cache/ on a USB stick). Laid out exactly like a store's
// chunks dir (DIR/chunks/ab/<sha256>.zst, zstd-compressed), so a cache dir can seed a store and
// vice versa. Entries are written atomically (tmp + rename) in the background, and verified again
// on every read: a corrupt entry is deleted and fetched from below.
import { mkdir, readFile, stat, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { chunkPath } from "../chunk-name.ts";
import { unpackChunkAsync, type ChunkRef } from "../chunk.ts";
import { writeAtomic, writeTemp } from "../atomic.ts";
import type { GroupCommit } from "../group-commit.ts";
import { statfsSpace, type CacheRoom } from "../cache-room.ts";
import { zstdDeclaredSize, zstdRawFramePieces } from "../zstd-raw.ts";
import type { ChunkLayer } from "./layer.ts";
import { sha256Hex } from "../chunk-name.ts"; // for verifyCacheEntry (host tools, below)
import { ChunkError } from "../chunk.ts";

export class DiskCache implements ChunkLayer {
  hits = 0;
  misses = 0;
  corrupt = 0;
  /** entries that could not be written (medium full, read-only or gone) */
  writeErrors = 0;
  private writes = new Set<Promise<void>>();
  /** chunk subdirs known to exist (one mkdir each, not one per chunk) */
  private dirs = new Set<string>();
  constructor(
    private inner: ChunkLayer,
    readonly dir: string,
    /** zstd level of new entries; 0 = stored uncompressed in a raw-block zstd frame */
    private level = 1,
    /** the medium's group commit: given, each entry is flushed to the medium before its rename
     *  (a USB stick may lose power mid-boot), and a get() that writes one waits for that
     *  (write-through) */
    private group: GroupCommit | null = null,
    /** makes room when the medium runs low or the cache passes its cap (cache-room.ts) */
    private room: CacheRoom | null = null,
    /** with `group`: the longest a get() waits for its entry to reach the medium */
    private writeThroughMs = 10_000,
  ) {}

  async get(ref: ChunkRef, signal?: AbortSignal): Promise<Uint8Array> {
    const path = join(this.dir, chunkPath(ref.hex));
    this.room?.touch(ref.hex); // before the read: an eviction running now leaves it alone
    const packed = await readFile(path).catch(() => null);
    if (packed) {
      try {
        const plain = await unpackChunkAsync(ref, packed);
        this.hits++;
        return plain;
      } catch {
        this.corrupt++;
        if (await this.change(() => unlink(path)).then(() => true, () => false)) this.room?.removed(packed.length);
      }
    }
    this.misses++;
    const plain = await this.inner.get(ref, signal);
    // a full or read-only cache must not fail reads; a full one makes room for the next
    const w = this.store(ref.hex, path, plain).catch((e) => {
      this.writeErrors++;
      if ((e as { code?: string }).code === "ENOSPC") void this.room?.check();
    });
    this.writes.add(w);
    w.finally(() => this.writes.delete(w));
    // On removable media write through: a chunk is on the stick before its reader sees it, so a
    // `sync; poweroff` right after the last read still leaves the next boot nothing to download.
    // Bounded: a flush that hangs (a stick pulled, a USB reset) must not hang the root's reads;
    // the bytes are verified already.
    if (this.group) {
      let timer: Timer | undefined;
      await Promise.race([w, new Promise((r) => (timer = setTimeout(r, this.writeThroughMs)))]);
      clearTimeout(timer);
    }
    return plain;
  }

  /** Is there an entry for the chunk? Not read nor verified: every get() verifies what it reads. */
  has(ref: ChunkRef): Promise<boolean> {
    return stat(join(this.dir, chunkPath(ref.hex))).then(
      (st) => st.isFile() && st.size > 0,
      () => false,
    );
  }

  /** Free and total bytes the cache may use: the filesystem's, narrowed by the cache's cap if it
   *  has one (null if it cannot be asked). */
  async space(): Promise<{ free: number; total: number } | null> {
    return this.room ? this.room.space().catch(() => null) : statfsSpace(this.dir);
  }

  private async store(hex: string, path: string, plain: Uint8Array): Promise<void> {
    // level 0: a raw-block zstd frame (no compression, memcpy-speed reads on a warm boot), written
    // as pieces: headers and views of the chunk, no copy
    const packed = this.level === 0 ? zstdRawFramePieces(plain) : await Bun.zstdCompress(plain, { level: this.level });
    const bytes = Array.isArray(packed) ? packed.reduce((n, p) => n + p.byteLength, 0) : packed.byteLength;
    this.room?.add(hex, bytes);
    try {
      if (!this.group) await this.inSubdir(path, () => writeAtomic(path, packed));
      else await this.group.commit(await this.change(() => this.inSubdir(path, () => writeTemp(path, packed))), path);
      this.room?.settle(hex, true);
    } catch (e) {
      this.room?.settle(hex, false);
      throw e;
    }
  }

  /** Runs fn, which writes into the entry's subdir: made first (once), and again if removed since. */
  private async inSubdir<T>(path: string, fn: () => Promise<T>): Promise<T> {
    const dir = dirname(path);
    if (!this.dirs.has(dir)) {
      await this.makeDir(dir);
      this.dirs.add(dir);
    }
    try {
      return await fn();
    } catch (e) {
      if ((e as { code?: string }).code !== "ENOENT") throw e;
      this.dirs.delete(dir);
      await this.makeDir(dir);
      this.dirs.add(dir);
      return await fn();
    }
  }

  /** mkdir -p; on removable media the group commit puts a new dir on the medium at once. */
  private async makeDir(dir: string): Promise<void> {
    if (this.group) await this.group.makeDir(dir);
    else await mkdir(dir, { recursive: true });
  }

  /** A change to the medium: with a group commit, never while it flushes (group-commit.ts). */
  private change<T>(fn: () => Promise<T>): Promise<T> {
    return this.group ? this.group.change(fn) : fn();
  }

  /** Waits for background writes, and for the room they take to be made (tests, clean shutdown:
   *  a cache left past its cap would stay so until the next run writes). */
  async flush(): Promise<void> {
    await Promise.all([...this.writes]);
    await this.room?.checkNow();
  }

  async close(): Promise<void> {
    await this.flush();
    await this.inner.close?.();
  }
}

// For host tools (`inetboot cache`) that walk a cache dir without an index, so without lengths.

/** File name of a cache entry: <64 hex sha256 of the plain bytes>.zst (under chunks/<first 2 hex>/). */
export const CACHE_ENTRY_NAME = /^([0-9a-f]{64})\.zst$/;

/** Where the entry for `hex` lives below a cache dir. */
export function cacheEntryPath(dir: string, hex: string): string {
  return join(dir, chunkPath(hex));
}

/** Checks an entry whose plain length is unknown: one zstd frame whose plain bytes hash to `hex`. */
export async function verifyCacheEntry(hex: string, packed: Uint8Array): Promise<Uint8Array> {
  const declared = zstdDeclaredSize(packed);
  if (declared < 0 || declared > 1 << 22) throw new ChunkError(`chunk ${hex.slice(0, 16)}…: not a zstd frame declaring a chunk's size (at most 4 MiB)`);
  let plain: Uint8Array;
  try {
    plain = await Bun.zstdDecompress(packed);
  } catch {
    throw new ChunkError(`chunk ${hex.slice(0, 16)}…: not valid zstd data`);
  }
  if (sha256Hex(plain) !== hex) throw new ChunkError(`chunk ${hex.slice(0, 16)}…: digest mismatch`);
  return plain;
}
