// BlockSource over a store index and a chunk fetcher stack: maps byte ranges to chunks, fetches
// the needed chunks concurrently (verified by the layers below), and reads zero chunks as holes.
import { chunkLength, digestAt, isZeroDigest, type StoreIndex } from "./format.ts";
import type { ChunkRef } from "./chunk.ts";
import type { ChunkLayer } from "./fetcher/layer.ts";
import { BlockError, type BlockSource, type Extent } from "./source.ts";

export class StoreReader implements BlockSource {
  readonly size: number;
  readonly readOnly = true;
  readonly blockSize: number;
  private refs: (ChunkRef | null)[];
  /** One chunk of zeros shared by every read of a zero chunk (readers never modify what they get). */
  private zeros: Uint8Array | null = null;

  constructor(
    readonly index: StoreIndex,
    private layer: ChunkLayer,
  ) {
    this.size = index.imageSize;
    this.blockSize = index.chunkSize;
    const n = Math.ceil(index.imageSize / index.chunkSize);
    this.refs = new Array(n);
    for (let i = 0; i < n; i++) {
      const d = digestAt(index, i);
      this.refs[i] = isZeroDigest(d) ? null : { hex: d.toHex(), size: chunkLength(index, i) };
    }
  }

  /** Chunk i's plain bytes (zeros for a zero chunk). */
  private async chunk(i: number): Promise<Uint8Array> {
    const ref = this.refs[i];
    if (ref === undefined) throw new BlockError("EINVAL", `chunk ${i} beyond the image`);
    if (ref === null) return (this.zeros ??= new Uint8Array(this.index.chunkSize)).subarray(0, chunkLength(this.index, i));
    try {
      return await this.layer.get(ref);
    } catch (e) {
      if (e instanceof BlockError) throw e;
      throw new BlockError("EIO", (e as Error).message);
    }
  }

  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset < 0 || length < 0 || offset + length > this.size)
      throw new BlockError("EINVAL", `read ${offset}+${length} beyond image size ${this.size}`);
    if (length === 0) return new Uint8Array(0);
    const cs = this.index.chunkSize;
    const first = Math.floor(offset / cs);
    const last = Math.floor((offset + length - 1) / cs);
    if (first === last) {
      // Inside one chunk (the common case: clients read chunk-aligned blocks): a view, no copy.
      const data = await this.chunk(first);
      const from = offset - first * cs;
      return data.subarray(from, from + length);
    }
    const out = new Uint8Array(length);
    const jobs: Promise<void>[] = [];
    for (let i = first; i <= last; i++) {
      if (this.refs[i] === null) continue; // already zero in `out`
      jobs.push(
        this.chunk(i).then((data) => {
          const cStart = i * cs;
          const from = Math.max(offset, cStart);
          const to = Math.min(offset + length, cStart + data.length);
          out.set(data.subarray(from - cStart, to - cStart), from - offset);
        }),
      );
    }
    await Promise.all(jobs);
    return out;
  }

  isHole(offset: number, length: number): boolean {
    if (length <= 0 || offset < 0 || offset + length > this.size) return false;
    const cs = this.index.chunkSize;
    for (let i = Math.floor(offset / cs); i <= Math.floor((offset + length - 1) / cs); i++) if (this.refs[i] !== null) return false;
    return true;
  }

  async prefetch(offset: number, length: number): Promise<void> {
    if (length <= 0) return;
    const cs = this.index.chunkSize;
    const first = Math.max(0, Math.floor(offset / cs));
    const last = Math.min(this.refs.length - 1, Math.floor((offset + length - 1) / cs));
    const jobs: Promise<unknown>[] = [];
    for (let i = first; i <= last; i++) if (this.refs[i]) jobs.push(this.chunk(i).catch(() => {}));
    await Promise.all(jobs);
  }

  async extents(offset: number, length: number): Promise<Extent[]> {
    const out: Extent[] = [];
    const end = Math.min(this.size, offset + length);
    const cs = this.index.chunkSize;
    let pos = offset;
    while (pos < end) {
      const i = Math.floor(pos / cs);
      const zero = this.refs[i] === null;
      const to = Math.min(end, (i + 1) * cs);
      const lastExt = out[out.length - 1];
      if (lastExt && lastExt.zero === zero) lastExt.length += to - pos;
      else out.push({ offset: pos, length: to - pos, zero });
      pos = to;
    }
    return out;
  }

  close(): Promise<void> {
    return this.layer.close?.() ?? Promise.resolve();
  }
}
