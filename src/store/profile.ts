// Boot profile codec (pure: bytes in, bytes out). A profile lists the chunks a boot read, in the
// order it first read them, with the time of each first read; it belongs to exactly one index
// (named by the index checksum) and is published next to it as `<index name>.profile`.
// Layout (all integers little-endian; documented in docs/prefetch.md):
//
//   off  size  field
//     0     8  magic "IBPROFL\0"
//     8     2  version = 1
//    10     2  flags = 0 (readers reject unknown flags)
//    12     4  entry count N
//    16    32  index checksum (the last 32 bytes of the index file the profile was recorded on)
//    48   8*N  entries: u32 chunk number, u32 ms since the NBD server started serving
//  end-32  32  SHA-256 of every byte before it
import { DIGEST_LEN, encodeIndex, type StoreIndex } from "./format.ts";

export const PROFILE_MAGIC = new Uint8Array([0x49, 0x42, 0x50, 0x52, 0x4f, 0x46, 0x4c, 0x00]); // "IBPROFL\0"
export const PROFILE_VERSION = 1;
const HEADER = 48;
const ENTRY = 8;
/** A profile for the biggest index we'd ever see stays small: cap the count to reject garbage early. */
export const MAX_PROFILE_ENTRIES = 1 << 24;

export interface ProfileEntry {
  /** chunk number in the image (offset / chunk size) */
  chunk: number;
  /** ms after the NBD server started serving when the boot first read it */
  ms: number;
}

export interface BootProfile {
  /** checksum of the index this profile was recorded on (32 bytes) */
  indexDigest: Uint8Array;
  /** chunks in first-read order, no duplicates */
  entries: ProfileEntry[];
}

export class ProfileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProfileError";
  }
}

function sha256(data: Uint8Array): Uint8Array {
  const h = new Bun.CryptoHasher("sha256");
  h.update(data);
  return new Uint8Array(h.digest().buffer as ArrayBuffer);
}

/** The checksum that names an index (its trailing SHA-256; encoding is deterministic). */
export function indexDigest(index: StoreIndex): Uint8Array {
  return encodeIndex(index).slice(-DIGEST_LEN);
}

export function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function toHex(b: Uint8Array): string {
  return Buffer.from(b).toString("hex");
}

export function fromHex(s: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/i.test(s)) throw new ProfileError(`not a 64-digit hex digest: ${s.slice(0, 70)}`);
  return new Uint8Array(Buffer.from(s, "hex"));
}

export function encodeProfile(p: BootProfile): Uint8Array {
  if (p.indexDigest.length !== DIGEST_LEN) throw new ProfileError(`index digest must be ${DIGEST_LEN} bytes`);
  const n = p.entries.length;
  const out = new Uint8Array(HEADER + n * ENTRY + DIGEST_LEN);
  const dv = new DataView(out.buffer);
  out.set(PROFILE_MAGIC, 0);
  dv.setUint16(8, PROFILE_VERSION, true);
  dv.setUint16(10, 0, true);
  dv.setUint32(12, n, true);
  out.set(p.indexDigest, 16);
  const seen = new Set<number>();
  p.entries.forEach((e, i) => {
    if (!Number.isInteger(e.chunk) || e.chunk < 0 || e.chunk > 0xffffffff) throw new ProfileError(`bad chunk number ${e.chunk}`);
    if (seen.has(e.chunk)) throw new ProfileError(`chunk ${e.chunk} listed twice`);
    seen.add(e.chunk);
    dv.setUint32(HEADER + i * ENTRY, e.chunk, true);
    dv.setUint32(HEADER + i * ENTRY + 4, Math.min(0xffffffff, Math.max(0, Math.round(e.ms))), true);
  });
  out.set(sha256(out.subarray(0, out.length - DIGEST_LEN)), out.length - DIGEST_LEN);
  return out;
}

/** Parses and checks a profile; anything inconsistent is a ProfileError saying what. */
export function decodeProfile(bytes: Uint8Array): BootProfile {
  if (bytes.length < HEADER + DIGEST_LEN) throw new ProfileError(`profile too short (${bytes.length} bytes)`);
  for (let i = 0; i < PROFILE_MAGIC.length; i++)
    if (bytes[i] !== PROFILE_MAGIC[i]) throw new ProfileError("not a boot profile (bad magic)");
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = dv.getUint16(8, true);
  if (version !== PROFILE_VERSION) throw new ProfileError(`unsupported profile version ${version}`);
  if (dv.getUint16(10, true) !== 0) throw new ProfileError("unknown profile flags");
  const n = dv.getUint32(12, true);
  if (n > MAX_PROFILE_ENTRIES || bytes.length !== HEADER + n * ENTRY + DIGEST_LEN)
    throw new ProfileError(`profile length ${bytes.length} does not match ${n} entries`);
  const want = sha256(bytes.subarray(0, bytes.length - DIGEST_LEN));
  if (!sameDigest(want, bytes.subarray(bytes.length - DIGEST_LEN))) throw new ProfileError("profile checksum mismatch (corrupt profile)");
  const entries: ProfileEntry[] = new Array(n);
  const seen = new Set<number>();
  for (let i = 0; i < n; i++) {
    const chunk = dv.getUint32(HEADER + i * ENTRY, true);
    if (seen.has(chunk)) throw new ProfileError(`chunk ${chunk} listed twice`);
    seen.add(chunk);
    entries[i] = { chunk, ms: dv.getUint32(HEADER + i * ENTRY + 4, true) };
  }
  return { indexDigest: bytes.slice(16, 16 + DIGEST_LEN), entries };
}

/** The entries first read within `seconds` of the recording's start (e.g. up to a boot's marker,
 *  leaving out what a login read afterwards). */
export function profileUntil(p: BootProfile, seconds: number): BootProfile {
  // entries are whole ms; 2.018 * 1000 is 2017.9999999999998 in floating point
  const ms = Math.round(seconds * 1000);
  return { ...p, entries: p.entries.filter((e) => e.ms <= ms) };
}

/** The file name a profile gets next to its index (`index` → `index.profile`). */
export function profileNameFor(indexName: string): string {
  return `${indexName}.profile`;
}
