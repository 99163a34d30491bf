// The kexec handoff (the seed rebuilt its miniroot): a small cpio appended to the next stage's
// initrd with what stage 2 would otherwise redo — the network configuration, the mirror list in
// the order that worked, the cache location. The kernel unpacks concatenated archives in order,
// so /etc/inetboot/handoff.json simply appears in stage 2's root.
import { existsSync, readFileSync } from "node:fs";
import { encodeArchive } from "../initramfs/cpio.ts";
import type { NetResult } from "../net/setup.ts";

export const HANDOFF_PATH = "/etc/inetboot/handoff.json";
export const HANDOFF_VERSION = 1;

export interface Handoff {
  version: number;
  /** seconds since the epoch when stage 1 wrote it: stale handoffs are ignored */
  written: number;
  net: NetResult | null;
  mirrors: string[];
  cache?: { device: string; fstype: string } | null;
  from: string;
}

/** A newc archive holding the handoff file (and the directories leading to it). */
export function encodeHandoff(h: Handoff): Uint8Array {
  const data = new TextEncoder().encode(JSON.stringify(h));
  const mtime = h.written;
  return encodeArchive([
    { path: "etc", kind: "dir", perm: 0o755, mtime },
    { path: "etc/inetboot", kind: "dir", perm: 0o755, mtime },
    { path: HANDOFF_PATH.slice(1), kind: "file", perm: 0o600, mtime, data },
  ]);
}

/**
 * Zero bytes to put between an initrd of `size` bytes and an archive appended to it. The kernel
 * looks for the next archive at a 4-byte boundary, skipping zero bytes. The extra zero word ends an
 * lz4 legacy frame (our default initramfs): its unpacker stops at the end of input or at a zero
 * block size (Linux >= 5.11) and would otherwise read the next archive's first bytes as a block size.
 */
export function appendPadding(size: number): Uint8Array {
  return new Uint8Array(4 + ((4 - (size % 4)) % 4));
}

/** Reads and checks the handoff; null when absent, malformed or older than maxAgeS. */
export function readHandoff(path = HANDOFF_PATH, now = Date.now() / 1000, maxAgeS = 600): Handoff | null {
  if (!existsSync(path)) return null;
  try {
    const h = JSON.parse(readFileSync(path, "utf8")) as Handoff;
    if (h.version !== HANDOFF_VERSION || typeof h.written !== "number") return null;
    // Clocks can be unset in both stages (same RTC); only refuse handoffs clearly from another boot.
    if (Math.abs(now - h.written) > maxAgeS) return null;
    return h;
  } catch {
    return null;
  }
}
