// Atomic file writes: a unique tmp file beside the target, then rename(2), so readers see the
// old file or the whole new one, never a partial one.
import { open, rename, unlink } from "node:fs/promises";

let tmpSeq = 0;
function tmpName(path: string): string {
  return `${path}.tmp-${process.pid}-${++tmpSeq}`;
}

/** Writes bytes (or pieces written back to back, with no copy) to a fresh tmp file beside path
 *  and returns its name; the caller renames it (or unlinks it). Nothing is left on failure. */
export async function writeTemp(path: string, data: Uint8Array | Uint8Array[], fsync = false): Promise<string> {
  const tmp = tmpName(path);
  try {
    const fh = await open(tmp, "w");
    try {
      let pieces = Array.isArray(data) ? data.filter((p) => p.length > 0) : [data];
      while (pieces.length > 0) {
        let n = pieces.length === 1 ? (await fh.write(pieces[0]!, 0, pieces[0]!.length)).bytesWritten : (await fh.writev(pieces)).bytesWritten;
        // a short write: go on after the bytes that made it
        while (pieces.length > 0 && n >= pieces[0]!.length) n -= pieces.shift()!.length;
        if (n > 0) pieces[0] = pieces[0]!.subarray(n);
      }
      if (fsync) await fh.sync();
    } finally {
      await fh.close();
    }
    return tmp;
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}

/** Writes bytes to path atomically (unique tmp file in the same dir, then rename). */
export async function writeAtomic(path: string, data: Uint8Array | Uint8Array[], fsync = false): Promise<void> {
  const tmp = await writeTemp(path, data, fsync);
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}
