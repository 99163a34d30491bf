// Room in the persistent chunk cache while a boot writes to it. When the medium runs low (less
// than half the fill's reserve free) or the cache folder outgrows its cap (`inetboot.cachesize=`),
// the least recently used chunks (and cached kernels/initrds) go until the reserve is free again.
// Chunks this boot has read or written are never evicted: they are what the next boot from this
// stick most likely reads.
//
// Only the boot's own reads push others out. The cache fill stops at its reserve (fill.ts) and so
// never gets here: two stores sharing a stick would otherwise evict each other at every boot.
// "Least recently used" is by the later of access and write time, as `inetboot cache prune` sees it.
import { rmdir, statfs, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { scanCache, type CacheScan } from "../cache/scan.ts";
import { pickEvictions } from "../cache/prune.ts";
import { fillReserve } from "./fill.ts";
import { PAYLOADS_DIR } from "../boot/payload-cache.ts";

export interface Space {
  free: number;
  total: number;
}

export interface Eviction {
  count: number;
  bytes: number;
  /** free bytes (under the cap, if any) after the eviction */
  free: number;
  /** chunks it could not evict: used by this boot */
  kept: number;
}

/** The console line for an eviction. */
export function evictionLine(e: Eviction): string {
  const mib = (n: number) => (n / 1048576).toFixed(1);
  return `cache: made room, evicted ${e.count} least recently used chunks (${mib(e.bytes)} MiB; ${mib(e.free)} MiB free)`;
}

export interface CacheRoomOptions {
  /** the cache folder's bytes at most (default: as much as the filesystem has) */
  capBytes?: number;
  /** unlinks go through it (removable media: the group commit wakes the medium, and no change
   *  is made while it flushes) */
  change?: <T>(fn: () => Promise<T>) => Promise<T>;
  /** the filesystem's free and total bytes (default statfs; a seam for tests) */
  fsSpace?: (dir: string) => Promise<Space | null>;
  /** look again after this many bytes written (default 1 MiB) */
  checkEveryBytes?: number;
  onEvict?: (e: Eviction) => void;
  /** an eviction failed (the medium went away or read-only): one line */
  onError?: (line: string) => void;
}

/** Free and total bytes of the filesystem holding dir (null if it cannot be asked). */
export async function statfsSpace(dir: string): Promise<Space | null> {
  const st = await statfs(dir).catch(() => null);
  return st ? { free: st.bavail * st.bsize, total: st.blocks * st.bsize } : null;
}

const sum = (xs: { bytes: number }[]) => xs.reduce((n, x) => n + x.bytes, 0);

export class CacheRoom {
  /** chunks this boot read or wrote: never evicted */
  private used = new Set<string>();
  /** the cache folder's bytes, known after a scan (kept only with a cap) */
  private bytes: number | null = null;
  private scanning: Promise<number> | null = null;
  /** entries being written: hex → bytes (a scan may or may not see them yet) */
  private writing = new Map<string, number>();
  /** for each scan under way, the entries added since it began */
  private scans = new Set<Map<string, number>>();
  private sinceCheck = 0;
  private running: Promise<void> | null = null;
  private failed = false;

  constructor(
    readonly dir: string,
    private opts: CacheRoomOptions = {},
  ) {}

  /** A chunk this boot uses (read from the cache, or about to be). */
  touch(hex: string): void {
    this.used.add(hex);
  }

  /** An entry of `bytes` is about to be written: it counts from now on (writes in flight must not
   *  look like room), and may start an eviction in the background. */
  add(hex: string, bytes: number): void {
    this.used.add(hex);
    this.writing.set(hex, bytes);
    for (const t of this.scans) t.set(hex, bytes);
    if (this.bytes !== null) this.bytes += bytes;
    this.sinceCheck += bytes;
    if (this.sinceCheck >= (this.opts.checkEveryBytes ?? 1 << 20)) void this.check();
  }

  /** An entry of `bytes` was deleted (it failed its check): it no longer counts. */
  removed(bytes: number): void {
    if (this.bytes !== null) this.bytes = Math.max(0, this.bytes - bytes);
  }

  /** The write of an entry add() counted ended; a failed one no longer counts. */
  settle(hex: string, written: boolean): void {
    const bytes = this.writing.get(hex) ?? 0;
    this.writing.delete(hex);
    if (written) return;
    for (const t of this.scans) t.delete(hex);
    if (this.bytes !== null) this.bytes -= bytes;
  }

  /** A scan of the folder and its bytes as of the moment it ends: each entry counted once, whether
   *  being written, written while the scan ran (seen or not), or found. Temp files are left out:
   *  they are those same writes, or leftovers of a power cut that `inetboot cache prune` removes. */
  private async scan(): Promise<{ scan: CacheScan; bytes: number }> {
    const added = new Map<string, number>();
    this.scans.add(added);
    try {
      const scan = await scanCache(this.dir);
      const seen = new Set<string>();
      let bytes = sum(scan.indexes) + sum(scan.payloads);
      for (const c of scan.chunks) {
        seen.add(c.hex);
        if (!this.writing.has(c.hex)) bytes += c.bytes;
      }
      for (const b of this.writing.values()) bytes += b;
      for (const [hex, b] of added) if (!seen.has(hex) && !this.writing.has(hex)) bytes += b;
      return { scan, bytes };
    } finally {
      this.scans.delete(added);
    }
  }

  private folderSize(): Promise<number> {
    if (this.bytes !== null) return Promise.resolve(this.bytes);
    this.scanning ??= this.scan()
      .then((r) => (this.bytes = r.bytes))
      .finally(() => (this.scanning = null));
    return this.scanning;
  }

  /** Free and total bytes as the cache may use them: the filesystem's, narrowed by the cap. */
  async space(): Promise<Space | null> {
    const r = await this.room();
    return r && { total: r.total, free: Math.max(0, r.free) };
  }

  /** the cap (inetboot.cachesize), if any */
  get capBytes(): number | undefined {
    return this.opts.capBytes;
  }

  /** Whether everything counted so far (written, being written, added) fits under the cap; true
   *  without one (a full filesystem shows as a failed write instead). */
  async fitsCap(): Promise<boolean> {
    const cap = this.opts.capBytes;
    return cap === undefined || (await this.folderSize()) <= cap;
  }

  /** As space(), but past the cap `free` is negative: by how much the folder is over. */
  private async room(): Promise<Space | null> {
    const fs = await (this.opts.fsSpace ?? statfsSpace)(this.dir);
    if (!fs) return null;
    const cap = this.opts.capBytes;
    if (cap === undefined) return fs;
    return { total: cap, free: Math.min(fs.free, cap - (await this.folderSize())) };
  }

  /** Evicts if the room is short (one at a time; a caller during one waits for it). Never throws. */
  check(): Promise<void> {
    this.sinceCheck = 0;
    this.running ??= this.evictIfShort()
      .catch((e) => {
        // once: a medium gone read-only or away fails every later try the same way
        if (!this.failed) this.opts.onError?.(`cache eviction in ${this.dir}: ${(e as Error).message}`);
        this.failed = true;
      })
      .finally(() => (this.running = null));
    return this.running;
  }

  /** A check that looks at everything written so far (not one already under way). */
  async checkNow(): Promise<void> {
    if (this.running) await this.running;
    await this.check();
  }

  private async evictIfShort(): Promise<void> {
    const room = await this.room();
    if (!room) return;
    const reserve = fillReserve(room.total);
    if (room.free >= reserve / 2) return;
    const { scan, bytes: now } = await this.scan();
    if (this.bytes !== null) this.bytes = now; // counts drift (failed unlinks, fsck); a scan settles them
    // Kernels and initrds too: stage 1 read the one it booted, so it is recent and goes last.
    const cached = [...scan.chunks, ...scan.payloads];
    const candidates = cached.filter((c) => !this.used.has(c.hex));
    const victims = pickEvictions(candidates, reserve - room.free, 0);
    const change = this.opts.change ?? ((fn) => fn());
    const dirs = new Set<string>();
    let bytes = 0;
    let count = 0;
    for (const v of victims) {
      // a chunk a reader touched meanwhile stays (its read may be on its way)
      if (this.used.has(v.hex)) continue;
      await change(() => unlink(v.path)).catch((e) => {
        if ((e as { code?: string }).code !== "ENOENT") throw e;
      });
      if (this.bytes !== null) this.bytes -= v.bytes;
      dirs.add(dirname(v.path));
      bytes += v.bytes;
      count++;
    }
    // empty fan-out dirs go too (rmdir fails on the others)
    for (const d of dirs) if (!d.endsWith(`/${PAYLOADS_DIR}`)) await change(() => rmdir(d)).catch(() => {});
    if (count === 0) return; // all of it used by this boot: writes fail, and are counted
    const after = await this.space().catch(() => null);
    this.opts.onEvict?.({ count, bytes, free: after?.free ?? Math.max(0, room.free + bytes), kept: cached.length - candidates.length });
  }
}
