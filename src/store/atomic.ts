// Atomic file writes: a unique tmp file beside the target, then rename(2), so readers see the
// old file or the whole new one, never a partial one.
import { open, rename, unlink } from "node:fs/promises";

let tmpSeq = 0;
function tmpName(path: string): string {
  return `${path}.tmp-${process.pid}-${++tmpSeq}`;
}

/** Writes bytes to path atomically (unique tmp file in the same dir, then rename). */
export async function writeAtomic(path: string, data: Uint8Array, fsync = false): Promise<void> {
  const tmp = tmpName(path);
  try {
    const fh = await open(tmp, "w");
    try {
      let off = 0;
      while (off < data.length) off += (await fh.write(data, off, data.length - off)).bytesWritten;
      if (fsync) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
}
