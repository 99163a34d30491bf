// Raw mode: a plain disk image on any HTTP server that honours Range, read without a pack step
// (what nbdkit's curl plugin does). Reads are aligned to fixed fetch blocks so a memory LRU,
// single-flight and read-ahead work the same as for a store; contiguous missing blocks are
// coalesced into one Range request. There is no digest to check, so bytes are only checked for
// status, Content-Range and length; mirror failover works as for stores.
import { BlockError, type BlockSource } from "./source.ts";
import { MirrorSet, type MirrorOptions } from "./fetcher/mirrors.ts";
import type { HttpPool } from "./fetcher/pool.ts";

/** When consecutive blocks are adjacent views of one buffer (one Range response), bytes
 *  [start, start+length) of their concatenation as a single view: no copy. Else null. */
function contiguousView(blocks: Uint8Array[], start: number, length: number): Uint8Array | null {
  const b0 = blocks[0]!;
  for (let k = 1; k < blocks.length; k++) {
    const prev = blocks[k - 1]!, cur = blocks[k]!;
    if (cur.buffer !== b0.buffer || cur.byteOffset !== prev.byteOffset + prev.byteLength) return null;
  }
  return new Uint8Array(b0.buffer, b0.byteOffset + start, length);
}

/** largest single Range request: one huge read does not become one huge GET (measured: 1 MiB
 *  bodies come through Bun's fetch faster than 4 MiB ones) */
const MAX_REQUEST = 1024 * 1024;

/** a non-sequential read up to this size is fetched exactly, not as whole fetch blocks */
const SMALL_READ = 16 * 1024;

export interface RawOptions extends MirrorOptions {
  /** fetch granularity in bytes (default 128 KiB) */
  fetchBlock?: number;
  /** memory cache cap (default 32 MiB) */
  memCacheBytes?: number;
}

export class RawHttpSource implements BlockSource {
  readonly readOnly = true;
  readonly blockSize = 4096;
  readonly fetchBlock: number;
  private mirrors: MirrorSet<{ name: string }>;
  private cache = new Map<number, Uint8Array>();
  /** bytes the cached blocks keep alive: whole response buffers, each counted once (a block is a
   *  view of its response, which stays in memory while any of its blocks is cached) */
  private cacheBytes = 0;
  private bufferRefs = new Map<ArrayBufferLike, number>();
  private capBytes: number;
  private pending = new Map<number, Promise<Uint8Array>>();
  /** where the previous read ended (sequential detection) */
  private nextOffset = -1;

  constructor(
    urls: string[],
    readonly size: number,
    private pool: HttpPool,
    opts: RawOptions = {},
  ) {
    this.mirrors = new MirrorSet(urls.map((name) => ({ name })), opts);
    this.fetchBlock = opts.fetchBlock ?? 128 * 1024;
    this.capBytes = opts.memCacheBytes ?? 32 * 1024 * 1024;
  }

  get mirrorSet(): MirrorSet<{ name: string }> {
    return this.mirrors;
  }

  /** true when any block of [first, last] is cached or being fetched */
  private has(first: number, last: number): boolean {
    for (let b = first; b <= last; b++) if (this.cache.has(b) || this.pending.has(b)) return true;
    return false;
  }

  private blockLen(b: number): number {
    return Math.min(this.fetchBlock, this.size - b * this.fetchBlock);
  }

  private remember(b: number, data: Uint8Array): void {
    if (this.cache.has(b)) return;
    this.cache.set(b, data);
    const refs = this.bufferRefs.get(data.buffer) ?? 0;
    if (refs === 0) this.cacheBytes += data.buffer.byteLength;
    this.bufferRefs.set(data.buffer, refs + 1);
    for (const [k, v] of this.cache) {
      if (this.cacheBytes <= this.capBytes) break;
      this.cache.delete(k);
      const left = this.bufferRefs.get(v.buffer)! - 1;
      if (left > 0) this.bufferRefs.set(v.buffer, left);
      else (this.bufferRefs.delete(v.buffer), (this.cacheBytes -= v.buffer.byteLength));
    }
  }

  /** Bytes the block cache keeps in memory (tests). */
  get cachedBytes(): number {
    return this.cacheBytes;
  }

  /** Starts fetches for blocks [first, last] that are neither cached nor pending. */
  private ensure(first: number, last: number): void {
    let runStart = -1;
    const flush = (endExcl: number) => {
      if (runStart < 0) return;
      const s = runStart;
      const start = s * this.fetchBlock;
      const end = Math.min(this.size, endExcl * this.fetchBlock);
      const all = this.mirrors.run(`range ${start}-${end - 1}`, (m, signal) =>
        this.pool.get(m.name, { start, end, total: this.size }, signal),
      );
      for (let b = s; b < endExcl; b++) {
        const p = all.then((buf) => {
          // Views, not copies: the blocks of one response share its buffer (read() below can
          // then hand out a run of them as one view).
          const off = (b - s) * this.fetchBlock;
          const data = buf.subarray(off, off + this.blockLen(b));
          this.remember(b, data);
          return data;
        });
        p.catch(() => {}).finally(() => this.pending.delete(b));
        this.pending.set(b, p);
      }
      runStart = -1;
    };
    const maxRun = Math.max(1, Math.floor(MAX_REQUEST / this.fetchBlock));
    for (let b = first; b <= last; b++) {
      if (this.cache.has(b) || this.pending.has(b)) flush(b);
      else {
        if (runStart >= 0 && b - runStart >= maxRun) flush(b);
        if (runStart < 0) runStart = b;
      }
    }
    flush(last + 1);
  }

  private async block(b: number): Promise<Uint8Array> {
    const hit = this.cache.get(b);
    if (hit) {
      this.cache.delete(b);
      this.cache.set(b, hit);
      return hit;
    }
    let p = this.pending.get(b);
    if (!p) {
      this.ensure(b, b);
      p = this.pending.get(b)!;
    }
    return p;
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.size)
      throw new BlockError("EINVAL", `read ${offset}+${length} beyond image size ${this.size}`);
    if (length === 0) return new Uint8Array(0);
    const fb = this.fetchBlock;
    const first = Math.floor(offset / fb);
    const last = Math.floor((offset + length - 1) / fb);
    const sequential = offset === this.nextOffset;
    this.nextOffset = offset + length;
    if (!sequential && length <= SMALL_READ && !this.has(first, last)) {
      // A small random read: fetch just these bytes (as nbdkit's curl plugin does) instead of
      // whole fetch blocks; the block cache is left alone.
      try {
        return await this.mirrors.run(`range ${offset}-${offset + length - 1}`, (m, signal) =>
          this.pool.get(m.name, { start: offset, end: offset + length, total: this.size }, signal),
        );
      } catch (e) {
        if (e instanceof BlockError) throw e;
        throw new BlockError("EIO", (e as Error).message);
      }
    }
    this.ensure(first, last);
    let blocks: Uint8Array[];
    try {
      const jobs: Promise<Uint8Array>[] = [];
      for (let b = first; b <= last; b++) jobs.push(this.block(b));
      blocks = await Promise.all(jobs);
    } catch (e) {
      if (e instanceof BlockError) throw e;
      throw new BlockError("EIO", (e as Error).message);
    }
    const start = offset - first * fb;
    const view = contiguousView(blocks, start, length);
    if (view) return view;
    const out = new Uint8Array(length);
    for (let k = 0; k < blocks.length; k++) {
      const data = blocks[k]!;
      const bStart = (first + k) * fb;
      const from = Math.max(offset, bStart);
      const to = Math.min(offset + length, bStart + data.length);
      out.set(data.subarray(from - bStart, to - bStart), from - offset);
    }
    return out;
  }

  async prefetch(offset: number, length: number): Promise<void> {
    if (length <= 0) return;
    const first = Math.max(0, Math.floor(offset / this.fetchBlock));
    const last = Math.min(Math.ceil(this.size / this.fetchBlock) - 1, Math.floor((offset + length - 1) / this.fetchBlock));
    this.ensure(first, last);
    const jobs: Promise<unknown>[] = [];
    for (let b = first; b <= last; b++) {
      const p = this.pending.get(b);
      if (p) jobs.push(p.catch(() => {}));
    }
    await Promise.all(jobs);
  }
}
