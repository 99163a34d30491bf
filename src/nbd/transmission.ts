// Transmission phase semantics: validate one request, run it against the BlockSource, and build
// the reply frames. No sockets here: the server writes the frames it gets back, contiguously.
import type { BlockSource, Extent } from "../store/source.ts";
import {
  encodeChunkBlockStatus, encodeChunkError, encodeChunkNone, encodeChunkOffsetDataHeader, encodeChunkOffsetHole, encodeSimpleReply,
  type Descriptor, type Request,
} from "./codec.ts";
import { BASE_ALLOCATION_ID, type Negotiated } from "./handshake.ts";
import { CMD, CMD_FLAG, MAX_REQUEST, NBD_ERR, REPLY_FLAG_DONE, STATE_HOLE, STATE_ZERO, TF } from "./protocol.ts";

export interface Session {
  source: BlockSource;
  neg: Negotiated;
  /** told of each request the source failed (not of a client's bad request): the server logs it */
  onSourceError?: (req: Request, e: unknown) => void;
}

/** An error to answer with: wire errno plus a line for humans (structured replies carry it). */
export class NbdReplyError extends Error {
  constructor(readonly errno: number, message: string) {
    super(message);
  }
}

const WRITES = new Set<number>([CMD.WRITE, CMD.TRIM, CMD.WRITE_ZEROES]);
/** Command names by number (built once: validate runs for every request). */
export const CMD_NAME = new Map<number, string>(Object.entries(CMD).map(([k, v]) => [v, k]));
/** Most descriptors one BLOCK_STATUS reply carries (keeps replies small; the client asks again). */
const MAX_DESCRIPTORS = 1024;

/** Command flags each command accepts (FUA is added for every command when advertised). */
function allowedFlags(type: number, neg: Negotiated): number {
  let f = neg.flags & TF.SEND_FUA ? CMD_FLAG.FUA : 0;
  if (type === CMD.READ && neg.flags & TF.SEND_DF) f |= CMD_FLAG.DF;
  if (type === CMD.WRITE_ZEROES) f |= CMD_FLAG.NO_HOLE;
  if (type === CMD.BLOCK_STATUS) f |= CMD_FLAG.REQ_ONE;
  return f;
}

/** Checks a request header before any payload is used. Returns the error to reply with, or null. */
export function validate(req: Request, s: Session): NbdReplyError | null {
  const { neg, source } = s;
  const name = CMD_NAME.get(req.type);
  if (name === undefined || req.type === CMD.DISC) return new NbdReplyError(NBD_ERR.EINVAL, `unknown command ${req.type}`);
  if ((req.flags & ~allowedFlags(req.type, neg)) !== 0)
    return new NbdReplyError(NBD_ERR.EINVAL, `flags 0x${req.flags.toString(16)} not valid for ${name}`);
  if (WRITES.has(req.type) && source.readOnly) return new NbdReplyError(NBD_ERR.EPERM, "export is read-only");
  if (req.type === CMD.FLUSH) {
    if (req.offset !== 0n || req.length !== 0) return new NbdReplyError(NBD_ERR.EINVAL, "FLUSH offset and length must be zero");
    return null;
  }
  if (req.length === 0) return new NbdReplyError(NBD_ERR.EINVAL, `${name} of zero bytes`);
  // (the spec: EINVAL; EOVERFLOW only for a READ that may not be fragmented)
  if ((req.type === CMD.READ || req.type === CMD.WRITE) && req.length > MAX_REQUEST)
    return new NbdReplyError(req.type === CMD.READ && req.flags & CMD_FLAG.DF ? NBD_ERR.EOVERFLOW : NBD_ERR.EINVAL, `${name} of ${req.length} bytes exceeds the ${MAX_REQUEST}-byte maximum`);
  if (req.offset > BigInt(Number.MAX_SAFE_INTEGER) || Number(req.offset) + req.length > source.size) {
    // The spec asks for ENOSPC on writes past the end, EINVAL elsewhere.
    const e = req.type === CMD.WRITE || req.type === CMD.WRITE_ZEROES ? NBD_ERR.ENOSPC : NBD_ERR.EINVAL;
    return new NbdReplyError(e, `${name} beyond the end of the export (${source.size} bytes)`);
  }
  if (req.type === CMD.BLOCK_STATUS && !neg.baseAllocation)
    return new NbdReplyError(NBD_ERR.EINVAL, "BLOCK_STATUS without a negotiated metadata context");
  return null;
}

const ZERO_CHUNK = 1 << 20;

async function zeroRange(src: BlockSource, off: number, len: number, noHole: boolean) {
  if (src.zero) return src.zero(off, len, noHole);
  // Emulated with plain writes so WRITE_ZEROES works on any writable source.
  const z = new Uint8Array(Math.min(len, ZERO_CHUNK));
  for (let p = 0; p < len; p += z.length) {
    const n = Math.min(z.length, len - p);
    await src.write!(off + p, n === z.length ? z : z.subarray(0, n));
  }
}

/** Turns a source's extents into base:allocation descriptors exactly covering a prefix of the range. */
export function toDescriptors(extents: Extent[], off: number, len: number, reqOne: boolean): Descriptor[] {
  const out: Descriptor[] = [];
  let pos = off;
  const end = off + len;
  const sorted = [...extents].sort((a, b) => a.offset - b.offset);
  for (const e of sorted) {
    if (pos >= end) break;
    const eEnd = Math.min(e.offset + e.length, end);
    if (e.offset > pos) {
      // A gap the source did not describe: report "allocated, unknown content" (always safe).
      push(out, Math.min(e.offset, end) - pos, 0);
      pos = Math.min(e.offset, end);
    }
    if (eEnd > pos) {
      push(out, eEnd - pos, e.zero ? STATE_HOLE | STATE_ZERO : 0);
      pos = eEnd;
    }
  }
  if (pos < end) push(out, end - pos, 0);
  const limit = reqOne ? 1 : MAX_DESCRIPTORS;
  return out.slice(0, limit);
}
function push(out: Descriptor[], length: number, flags: number) {
  const last = out[out.length - 1];
  if (last && last.flags === flags) last.length += length;
  else out.push({ length, flags });
}

function errnoOf(e: unknown): number {
  if (e instanceof NbdReplyError) return e.errno;
  const code = (e as { code?: unknown })?.code;
  if (typeof code === "string" && code in NBD_ERR) return NBD_ERR[code as keyof typeof NBD_ERR];
  return NBD_ERR.EIO;
}

/** The reply frames for an error, in the negotiated style. */
export function errorReply(req: Request, s: Session, e: unknown): Uint8Array[] {
  const errno = errnoOf(e);
  if (s.neg.structured) return [encodeChunkError(req.handle, errno, e instanceof Error ? e.message : String(e))];
  return [encodeSimpleReply(errno, req.handle)];
}

function okReply(req: Request, s: Session): Uint8Array[] {
  return [s.neg.structured ? encodeChunkNone(req.handle) : encodeSimpleReply(0, req.handle)];
}

/**
 * Runs one validated request. `payload` is the WRITE data. Never rejects: failures become error
 * replies, so one bad request cannot take the connection down.
 */
export async function execute(req: Request, payload: Uint8Array | null, s: Session): Promise<Uint8Array[]> {
  const bad = validate(req, s);
  if (bad) return errorReply(req, s, bad);
  const { source } = s;
  const off = Number(req.offset);
  const len = req.length;
  try {
    switch (req.type) {
      case CMD.READ: {
        // A range of zero chunks: one hole chunk instead of the zeros (structured replies only).
        if (s.neg.structured && source.isHole?.(off, len)) return [encodeChunkOffsetHole(REPLY_FLAG_DONE, req.handle, off, len)];
        const data = await source.read(off, len);
        if (data.length !== len) throw new NbdReplyError(NBD_ERR.EIO, `source returned ${data.length} of ${len} bytes`);
        if (s.neg.structured) return [encodeChunkOffsetDataHeader(REPLY_FLAG_DONE, req.handle, off, len), data];
        return [encodeSimpleReply(0, req.handle), data];
      }
      case CMD.WRITE:
        if (!source.write) throw new NbdReplyError(NBD_ERR.EPERM, "source cannot write");
        await source.write(off, payload!);
        break;
      case CMD.WRITE_ZEROES:
        if (!source.write && !source.zero) throw new NbdReplyError(NBD_ERR.EPERM, "source cannot write");
        await zeroRange(source, off, len, (req.flags & CMD_FLAG.NO_HOLE) !== 0);
        break;
      case CMD.TRIM:
        // Trim is advisory: a source without it simply keeps the data.
        await source.trim?.(off, len);
        break;
      case CMD.FLUSH:
        await source.flush?.();
        return okReply(req, s);
      case CMD.CACHE:
        await source.prefetch?.(off, len);
        return okReply(req, s);
      case CMD.BLOCK_STATUS: {
        const ext = source.extents ? await source.extents(off, len) : [];
        const descs = toDescriptors(ext, off, len, (req.flags & CMD_FLAG.REQ_ONE) !== 0);
        return [encodeChunkBlockStatus(REPLY_FLAG_DONE, req.handle, BASE_ALLOCATION_ID, descs)];
      }
    }
    if (req.flags & CMD_FLAG.FUA) await source.flush?.();
    return okReply(req, s);
  } catch (e) {
    s.onSourceError?.(req, e);
    return errorReply(req, s, e);
  }
}
