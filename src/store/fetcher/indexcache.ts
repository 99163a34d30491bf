// The disk cache also keeps the last verified index of each store URL, so a machine whose chunks
// are all cached (a USB stick) can open the store with every mirror unreachable. The file is
// CACHE/indexes/<sha256(index URL)>.index; the index's own checksum is verified on every read, and
// a file that fails it is deleted.
import { mkdir, readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import { writeAtomic } from "../atomic.ts";
import type { GroupCommit } from "../group-commit.ts";
import { sha256Hex } from "../chunk-name.ts";
import { decodeIndex, type StoreIndex } from "../format.ts";

export const INDEXES_DIR = "indexes";

export function cachedIndexPath(cacheDir: string, indexUrl: string): string {
  return join(cacheDir, INDEXES_DIR, `${sha256Hex(new TextEncoder().encode(indexUrl))}.index`);
}

/** The cached index of `indexUrl`, verified, or null (none, unreadable or corrupt). */
export async function loadCachedIndex(cacheDir: string, indexUrl: string): Promise<{ index: StoreIndex; bytes: Uint8Array } | null> {
  const path = cachedIndexPath(cacheDir, indexUrl);
  const bytes = await readFile(path).catch(() => null);
  if (!bytes) return null;
  try {
    return { index: decodeIndex(bytes), bytes };
  } catch {
    await unlink(path).catch(() => {});
    return null;
  }
}

/** Remembers a verified index (atomic write, through the medium's group commit if given; errors
 *  are the caller's to ignore). */
export async function saveCachedIndex(cacheDir: string, indexUrl: string, bytes: Uint8Array, group?: GroupCommit): Promise<void> {
  const path = cachedIndexPath(cacheDir, indexUrl);
  const old = await readFile(path).catch(() => null);
  if (old && Buffer.from(old).equals(Buffer.from(bytes))) return;
  if (!group) {
    await mkdir(join(cacheDir, INDEXES_DIR), { recursive: true });
    return writeAtomic(path, bytes, true);
  }
  await group.writeFile(path, bytes);
}
