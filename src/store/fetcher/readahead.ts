// Read-ahead as a BlockSource filter: when reads arrive sequentially, ask the source below to
// prefetch a window past the current read; the window doubles on each further sequential read
// (up to maxWindow) and resets on a seek. Works over any source that implements prefetch().
import type { BlockSource, Extent } from "../source.ts";

export interface ReadAheadOptions {
  /** first window in bytes (default 2 × blockSize) */
  minWindow?: number;
  /** largest window in bytes (default 4 MiB) */
  maxWindow?: number;
}

export class ReadAhead implements BlockSource {
  readonly size: number;
  readonly readOnly: boolean;
  readonly blockSize: number;
  private nextOffset = -1;
  private window = 0;
  private aheadEnd = 0;
  private minWindow: number;
  private maxWindow: number;
  /** prefetches issued (tests) */
  prefetches = 0;

  constructor(
    private inner: BlockSource,
    opts: ReadAheadOptions = {},
  ) {
    this.size = inner.size;
    this.readOnly = inner.readOnly;
    this.blockSize = inner.blockSize;
    this.minWindow = opts.minWindow ?? 2 * inner.blockSize;
    this.maxWindow = Math.max(this.minWindow, opts.maxWindow ?? 4 * 1024 * 1024);
  }

  read(offset: number, length: number): Promise<Uint8Array> {
    const end = offset + length;
    if (offset === this.nextOffset && this.inner.prefetch) {
      this.window = this.window ? Math.min(this.maxWindow, this.window * 2) : this.minWindow;
      const from = Math.max(end, this.aheadEnd);
      const to = Math.min(this.size, end + this.window);
      if (to > from) {
        this.prefetches++;
        this.aheadEnd = to;
        this.inner.prefetch(from, to - from).catch(() => {}); // a hint: errors surface on the real read
      }
    } else if (offset !== this.nextOffset) {
      this.window = 0;
      this.aheadEnd = 0;
    }
    this.nextOffset = end;
    return this.inner.read(offset, length);
  }

  prefetch(offset: number, length: number): Promise<void> {
    return this.inner.prefetch?.(offset, length) ?? Promise.resolve();
  }

  extents(offset: number, length: number): Promise<Extent[]> {
    return this.inner.extents ? this.inner.extents(offset, length) : Promise.resolve([{ offset, length, zero: false }]);
  }

  close(): Promise<void> {
    return this.inner.close?.() ?? Promise.resolve();
  }
}
