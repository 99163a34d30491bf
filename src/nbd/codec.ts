// Pure encode/decode of NBD frames: handshake messages, option payloads, requests and replies.
// No I/O and no state: the handshake table and the server feed bytes through these.
import {
  GREETING_SIZE, IHAVEOPT, INFO, MAX_STRING, NBDMAGIC, OPTION_HEADER_SIZE, OPTION_REPLY_HEADER_SIZE,
  REPLY_FLAG_DONE, REPLY_MAGIC, REPLY_TYPE, REQUEST_MAGIC, REQUEST_SIZE, SIMPLE_REPLY_MAGIC, SIMPLE_REPLY_SIZE,
  STRUCTURED_REPLY_HEADER_SIZE, STRUCTURED_REPLY_MAGIC,
} from "./protocol.ts";

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

function view(b: Uint8Array) {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Decodes a wire string; null when it is not valid UTF-8, holds a NUL, or is too long. */
export function decodeString(b: Uint8Array): string | null {
  if (b.length > MAX_STRING || b.includes(0)) return null;
  try {
    return dec.decode(b);
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------- handshake

/** S: NBDMAGIC, IHAVEOPT, 16-bit handshake flags. */
export function encodeGreeting(handshakeFlags: number): Uint8Array {
  const b = new Uint8Array(GREETING_SIZE);
  const v = view(b);
  v.setBigUint64(0, NBDMAGIC);
  v.setBigUint64(8, IHAVEOPT);
  v.setUint16(16, handshakeFlags);
  return b;
}
export function decodeGreeting(b: Uint8Array, off = 0) {
  const v = view(b);
  return { nbdMagic: v.getBigUint64(off), optMagic: v.getBigUint64(off + 8), flags: v.getUint16(off + 16) };
}

export function encodeClientFlags(flags: number): Uint8Array {
  const b = new Uint8Array(4);
  view(b).setUint32(0, flags >>> 0);
  return b;
}
export function decodeClientFlags(b: Uint8Array, off = 0): number {
  return view(b).getUint32(off);
}

export interface OptionHeader {
  magic: bigint;
  option: number;
  length: number;
}
export function encodeOption(option: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const b = new Uint8Array(OPTION_HEADER_SIZE + data.length);
  const v = view(b);
  v.setBigUint64(0, IHAVEOPT);
  v.setUint32(8, option >>> 0);
  v.setUint32(12, data.length);
  b.set(data, OPTION_HEADER_SIZE);
  return b;
}
export function decodeOptionHeader(b: Uint8Array, off = 0): OptionHeader {
  const v = view(b);
  return { magic: v.getBigUint64(off), option: v.getUint32(off + 8), length: v.getUint32(off + 12) };
}

/** S: option reply: magic, option, reply type, length, data. */
export function encodeOptionReply(option: number, type: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const b = new Uint8Array(OPTION_REPLY_HEADER_SIZE + data.length);
  const v = view(b);
  v.setBigUint64(0, REPLY_MAGIC);
  v.setUint32(8, option >>> 0);
  v.setUint32(12, type >>> 0);
  v.setUint32(16, data.length);
  b.set(data, OPTION_REPLY_HEADER_SIZE);
  return b;
}
export function decodeOptionReplyHeader(b: Uint8Array, off = 0) {
  const v = view(b);
  return { magic: v.getBigUint64(off), option: v.getUint32(off + 8), type: v.getUint32(off + 12), length: v.getUint32(off + 16) };
}

/** An error reply carrying a human-readable message. */
export function encodeOptionError(option: number, type: number, message: string): Uint8Array {
  return encodeOptionReply(option, type, enc.encode(message.slice(0, 1024)));
}

/** NBD_REP_SERVER payload: u32 name length, name, optional description. */
export function encodeRepServer(name: string, description = ""): Uint8Array {
  const n = enc.encode(name), d = enc.encode(description);
  const b = new Uint8Array(4 + n.length + d.length);
  view(b).setUint32(0, n.length);
  b.set(n, 4);
  b.set(d, 4 + n.length);
  return b;
}

/** NBD_REP_INFO payloads. */
export function encodeInfoExport(size: number, transmissionFlags: number): Uint8Array {
  const b = new Uint8Array(12);
  const v = view(b);
  v.setUint16(0, INFO.EXPORT);
  v.setBigUint64(2, BigInt(size));
  v.setUint16(10, transmissionFlags);
  return b;
}
export function encodeInfoString(type: typeof INFO.NAME | typeof INFO.DESCRIPTION, s: string): Uint8Array {
  const t = enc.encode(s);
  const b = new Uint8Array(2 + t.length);
  view(b).setUint16(0, type);
  b.set(t, 2);
  return b;
}
export function encodeInfoBlockSize(min: number, preferred: number, max: number): Uint8Array {
  const b = new Uint8Array(14);
  const v = view(b);
  v.setUint16(0, INFO.BLOCK_SIZE);
  v.setUint32(2, min);
  v.setUint32(6, preferred);
  v.setUint32(10, max);
  return b;
}

/** NBD_REP_META_CONTEXT payload: u32 context id, name. */
export function encodeRepMetaContext(id: number, name: string): Uint8Array {
  const n = enc.encode(name);
  const b = new Uint8Array(4 + n.length);
  view(b).setUint32(0, id);
  b.set(n, 4);
  return b;
}

/** Reply to NBD_OPT_EXPORT_NAME: u64 size, u16 flags, 124 zeroes unless NO_ZEROES. */
export function encodeExportNameReply(size: number, transmissionFlags: number, noZeroes: boolean): Uint8Array {
  const b = new Uint8Array(noZeroes ? 10 : 134);
  const v = view(b);
  v.setBigUint64(0, BigInt(size));
  v.setUint16(8, transmissionFlags);
  return b;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; reason: string };

/** NBD_OPT_INFO / NBD_OPT_GO data: u32 name length, name, u16 count, count × u16 info type. */
export function decodeInfoRequest(d: Uint8Array): Parsed<{ name: string; infos: number[] }> {
  if (d.length < 6) return { ok: false, reason: "option data too short" };
  const v = view(d);
  const nameLen = v.getUint32(0);
  if (nameLen > d.length - 6) return { ok: false, reason: "export name length exceeds option data" };
  const name = decodeString(d.subarray(4, 4 + nameLen));
  if (name === null) return { ok: false, reason: "export name is not a valid string" };
  const count = v.getUint16(4 + nameLen);
  if (6 + nameLen + count * 2 !== d.length) return { ok: false, reason: "info request count does not match option length" };
  const infos: number[] = [];
  for (let i = 0; i < count; i++) infos.push(v.getUint16(6 + nameLen + i * 2));
  return { ok: true, value: { name, infos } };
}
export function encodeInfoRequest(name: string, infos: number[]): Uint8Array {
  const n = enc.encode(name);
  const b = new Uint8Array(6 + n.length + infos.length * 2);
  const v = view(b);
  v.setUint32(0, n.length);
  b.set(n, 4);
  v.setUint16(4 + n.length, infos.length);
  infos.forEach((t, i) => v.setUint16(6 + n.length + i * 2, t));
  return b;
}

/** LIST/SET_META_CONTEXT data: u32 name length, name, u32 query count, each u32 length + query. */
export function decodeMetaRequest(d: Uint8Array): Parsed<{ name: string; queries: string[] }> {
  if (d.length < 8) return { ok: false, reason: "option data too short" };
  const v = view(d);
  const nameLen = v.getUint32(0);
  if (nameLen > d.length - 8) return { ok: false, reason: "export name length exceeds option data" };
  const name = decodeString(d.subarray(4, 4 + nameLen));
  if (name === null) return { ok: false, reason: "export name is not a valid string" };
  let p = 4 + nameLen;
  const count = v.getUint32(p);
  p += 4;
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    if (p + 4 > d.length) return { ok: false, reason: "query count exceeds option data" };
    const qLen = v.getUint32(p);
    p += 4;
    if (qLen > d.length - p) return { ok: false, reason: "query length exceeds option data" };
    const q = decodeString(d.subarray(p, p + qLen));
    if (q === null) return { ok: false, reason: "query is not a valid string" };
    queries.push(q);
    p += qLen;
  }
  if (p !== d.length) return { ok: false, reason: "trailing bytes after queries" };
  return { ok: true, value: { name, queries } };
}
export function encodeMetaRequest(name: string, queries: string[]): Uint8Array {
  const parts = [name, ...queries].map((s) => enc.encode(s));
  const total = 8 + parts.reduce((a, p) => a + p.length, 0) + queries.length * 4;
  const b = new Uint8Array(total);
  const v = view(b);
  let p = 0;
  v.setUint32(p, parts[0].length);
  b.set(parts[0], p + 4);
  p += 4 + parts[0].length;
  v.setUint32(p, queries.length);
  p += 4;
  for (const q of parts.slice(1)) {
    v.setUint32(p, q.length);
    b.set(q, p + 4);
    p += 4 + q.length;
  }
  return b;
}

// ---------------------------------------------------------------- transmission

export interface Request {
  magic: number;
  flags: number;
  type: number;
  /** Opaque 8 bytes, echoed back in every reply. */
  handle: bigint;
  offset: bigint;
  length: number;
}
export function encodeRequest(r: Omit<Request, "magic"> & { magic?: number }, data?: Uint8Array): Uint8Array {
  const b = new Uint8Array(REQUEST_SIZE + (data?.length ?? 0));
  const v = view(b);
  v.setUint32(0, (r.magic ?? REQUEST_MAGIC) >>> 0);
  v.setUint16(4, r.flags);
  v.setUint16(6, r.type);
  v.setBigUint64(8, r.handle);
  v.setBigUint64(16, r.offset);
  v.setUint32(24, r.length >>> 0);
  if (data) b.set(data, REQUEST_SIZE);
  return b;
}
export function decodeRequest(b: Uint8Array, off = 0): Request {
  const v = view(b);
  return {
    magic: v.getUint32(off),
    flags: v.getUint16(off + 4),
    type: v.getUint16(off + 6),
    handle: v.getBigUint64(off + 8),
    offset: v.getBigUint64(off + 16),
    length: v.getUint32(off + 24),
  };
}

/** Simple reply header (data, for a successful READ, follows separately). */
export function encodeSimpleReply(error: number, handle: bigint): Uint8Array {
  const b = new Uint8Array(SIMPLE_REPLY_SIZE);
  const v = view(b);
  v.setUint32(0, SIMPLE_REPLY_MAGIC);
  v.setUint32(4, error);
  v.setBigUint64(8, handle);
  return b;
}
export function decodeSimpleReply(b: Uint8Array, off = 0) {
  const v = view(b);
  return { magic: v.getUint32(off), error: v.getUint32(off + 4), handle: v.getBigUint64(off + 8) };
}

/** Structured reply chunk header; `payloadLength` bytes of payload follow. */
export function encodeChunkHeader(flags: number, type: number, handle: bigint, payloadLength: number): Uint8Array {
  const b = new Uint8Array(STRUCTURED_REPLY_HEADER_SIZE);
  const v = view(b);
  v.setUint32(0, STRUCTURED_REPLY_MAGIC);
  v.setUint16(4, flags);
  v.setUint16(6, type);
  v.setBigUint64(8, handle);
  v.setUint32(16, payloadLength);
  return b;
}
export function decodeChunkHeader(b: Uint8Array, off = 0) {
  const v = view(b);
  return { magic: v.getUint32(off), flags: v.getUint16(off + 4), type: v.getUint16(off + 6), handle: v.getBigUint64(off + 8), length: v.getUint32(off + 16) };
}

/** NBD_REPLY_TYPE_NONE with DONE: a structured success with no payload. */
export function encodeChunkNone(handle: bigint): Uint8Array {
  return encodeChunkHeader(REPLY_FLAG_DONE, REPLY_TYPE.NONE, handle, 0);
}
/** Header + offset of an OFFSET_DATA chunk; the data follows (kept separate to avoid a copy). */
export function encodeChunkOffsetDataHeader(flags: number, handle: bigint, offset: number, dataLength: number): Uint8Array {
  const b = new Uint8Array(STRUCTURED_REPLY_HEADER_SIZE + 8);
  b.set(encodeChunkHeader(flags, REPLY_TYPE.OFFSET_DATA, handle, 8 + dataLength));
  view(b).setBigUint64(STRUCTURED_REPLY_HEADER_SIZE, BigInt(offset));
  return b;
}
export function encodeChunkOffsetHole(flags: number, handle: bigint, offset: number, length: number): Uint8Array {
  const b = new Uint8Array(STRUCTURED_REPLY_HEADER_SIZE + 12);
  b.set(encodeChunkHeader(flags, REPLY_TYPE.OFFSET_HOLE, handle, 12));
  const v = view(b);
  v.setBigUint64(STRUCTURED_REPLY_HEADER_SIZE, BigInt(offset));
  v.setUint32(STRUCTURED_REPLY_HEADER_SIZE + 8, length);
  return b;
}
/** NBD_REPLY_TYPE_ERROR with DONE: u32 error, u16 message length, message. */
export function encodeChunkError(handle: bigint, error: number, message: string): Uint8Array {
  const m = enc.encode(message).subarray(0, 4096);
  const b = new Uint8Array(STRUCTURED_REPLY_HEADER_SIZE + 6 + m.length);
  b.set(encodeChunkHeader(REPLY_FLAG_DONE, REPLY_TYPE.ERROR, handle, 6 + m.length));
  const v = view(b);
  v.setUint32(STRUCTURED_REPLY_HEADER_SIZE, error);
  v.setUint16(STRUCTURED_REPLY_HEADER_SIZE + 4, m.length);
  b.set(m, STRUCTURED_REPLY_HEADER_SIZE + 6);
  return b;
}
export interface Descriptor {
  length: number;
  flags: number;
}
/** NBD_REPLY_TYPE_BLOCK_STATUS: u32 context id, then (u32 length, u32 flags) descriptors. */
export function encodeChunkBlockStatus(flags: number, handle: bigint, contextId: number, descs: Descriptor[]): Uint8Array {
  const payload = 4 + descs.length * 8;
  const b = new Uint8Array(STRUCTURED_REPLY_HEADER_SIZE + payload);
  b.set(encodeChunkHeader(flags, REPLY_TYPE.BLOCK_STATUS, handle, payload));
  const v = view(b);
  let p = STRUCTURED_REPLY_HEADER_SIZE;
  v.setUint32(p, contextId);
  p += 4;
  for (const d of descs) {
    v.setUint32(p, d.length);
    v.setUint32(p + 4, d.flags);
    p += 8;
  }
  return b;
}
export function decodeBlockStatusPayload(p: Uint8Array): { contextId: number; descs: Descriptor[] } {
  const v = view(p);
  const descs: Descriptor[] = [];
  for (let o = 4; o + 8 <= p.length; o += 8) descs.push({ length: v.getUint32(o), flags: v.getUint32(o + 4) });
  return { contextId: v.getUint32(0), descs };
}
