// Kernels and initrds cached on the cache medium by digest (files/<sha256>), so a reboot of the
// same manifest entry downloads nothing. Verified on every use; written tmp → fsync → rename.
// Under `inetboot.cachesize=` (or on a nearly full medium) least recently used entries make room
// first, as they do for chunks (store/cache-room.ts); a payload that still does not fit is not cached.
import { constants, copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, renameSync, rmSync, openSync, fsyncSync, closeSync, writeFileSync } from "node:fs";
import type { Payload } from "../manifest/index.ts";
import type { CacheRoom } from "../store/cache-room.ts";

/** Where a cache folder keeps kernels and initrds: PAYLOADS_DIR/<sha256> (cache/scan.ts lists them). */
export const PAYLOADS_DIR = "files";
const path = (dir: string, sha: string) => `${dir}/${PAYLOADS_DIR}/${sha}`;

function sha256(bytes: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
}

/** Copies a cached payload to dest when it exists and still matches; removes a bad copy. A copy
 *  found is marked used in `room`: making room for the other payload must not evict it. */
export async function cachedPayload(dir: string, p: Payload, dest: string, room?: CacheRoom): Promise<boolean> {
  const f = path(dir, p.sha256);
  if (!existsSync(f)) return false;
  room?.touch(p.sha256);
  try {
    // not a regular file of the payload's size (a FIFO would block the read forever): not ours
    const st = lstatSync(f);
    if (!st.isFile() || st.size !== p.size) {
      rmSync(f, { force: true, recursive: st.isDirectory() });
      return false;
    }
    const bytes = readFileSync(f);
    if (bytes.byteLength !== p.size || sha256(bytes) !== p.sha256) {
      rmSync(f, { force: true });
      return false;
    }
    writeFileSync(dest, bytes);
    return true;
  } catch {
    return false; // a pulled stick: fall back to the network
  }
}

/**
 * Keeps a verified payload on the cache medium. Returns whether it was kept; never throws. `room`
 * is the boot's view of the cache folder (its cap, what it used), shared by the payloads of one
 * entry so that a kernel and an initrd stored side by side are counted together.
 */
export async function storePayload(dir: string, p: Payload, src: string, room?: CacheRoom): Promise<boolean> {
  const tmp = `${path(dir, p.sha256)}.tmp-${process.pid}`;
  try {
    // loaded here: cache-room.ts (through cache/scan.ts) imports PAYLOADS_DIR from this module
    room ??= new (await import("../store/cache-room.ts")).CacheRoom(dir);
    // larger than the whole cap: evicting everything would not make it fit
    if (room.capBytes !== undefined && p.size > room.capBytes) return false;
    room.add(p.sha256, p.size); // counted from now on, and never evicted to make room for itself
    await room.checkNow();
    if (!(await room.fitsCap())) {
      room.settle(p.sha256, false);
      return false;
    }
    mkdirSync(`${dir}/${PAYLOADS_DIR}`, { recursive: true });
    rmSync(tmp, { force: true }); // a leftover (or a FIFO) at the tmp name
    copyFileSync(src, tmp, constants.COPYFILE_EXCL);
    const fd = openSync(tmp, "r+");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path(dir, p.sha256));
    room.settle(p.sha256, true);
    return true;
  } catch {
    room?.settle(p.sha256, false);
    try {
      rmSync(tmp, { force: true });
    } catch {
      /* a pulled stick: the leftover temp is removed by `inetboot cache prune` */
    }
    return false; // a full or pulled stick only costs the next boot a download
  }
}
