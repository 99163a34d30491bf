// Kernels and initrds cached on the cache medium by digest (files/<sha256>), so a reboot of the
// same manifest entry downloads nothing. Verified on every use; written tmp → fsync → rename.
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, openSync, fsyncSync, closeSync, writeFileSync } from "node:fs";
import type { Payload } from "../manifest/index.ts";

/** Where a cache folder keeps kernels and initrds: PAYLOADS_DIR/<sha256> (cache/scan.ts lists them). */
export const PAYLOADS_DIR = "files";
const path = (dir: string, sha: string) => `${dir}/${PAYLOADS_DIR}/${sha}`;

function sha256(bytes: Uint8Array): string {
  return new Bun.CryptoHasher("sha256").update(bytes).digest("hex");
}

/** Copies a cached payload to dest when it exists and still matches; removes a bad copy. */
export async function cachedPayload(dir: string, p: Payload, dest: string): Promise<boolean> {
  const f = path(dir, p.sha256);
  if (!existsSync(f)) return false;
  try {
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

export async function storePayload(dir: string, p: Payload, src: string): Promise<void> {
  try {
    mkdirSync(`${dir}/${PAYLOADS_DIR}`, { recursive: true });
    const tmp = `${path(dir, p.sha256)}.tmp-${process.pid}`;
    copyFileSync(src, tmp);
    const fd = openSync(tmp, "r+");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path(dir, p.sha256));
  } catch {
    /* a full or pulled stick only costs the next boot a download */
  }
}
