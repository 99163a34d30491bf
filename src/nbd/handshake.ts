// Server side of the fixed-newstyle negotiation as an explicit state table. Pure: bytes in,
// frames out. The server owns the socket and calls `feed`; tests drive it with byte vectors.
//
//   CLIENT_FLAGS --4 bytes--> OPTION_HEADER --16 bytes--> OPTION_DATA --length bytes--> (option handler)
//                                    ^          \--length too big--> OPTION_SKIP --discards--> ERR_TOO_BIG
//                                    '--- reply, more options ----------'
//   option handlers end in OPTION_HEADER (keep haggling), TRANSMISSION (GO / EXPORT_NAME) or CLOSED.
import {
  decodeClientFlags, decodeInfoRequest, decodeMetaRequest, decodeOptionHeader, decodeString, encodeExportNameReply,
  encodeGreeting, encodeInfoBlockSize, encodeInfoExport, encodeInfoString, encodeOptionError, encodeOptionReply,
  encodeRepMetaContext, encodeRepServer, type OptionHeader,
} from "./codec.ts";
import {
  FLAG_C_FIXED_NEWSTYLE, FLAG_C_NO_ZEROES, FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES, IHAVEOPT, INFO, MAX_OPTION_DATA, MAX_STRING,
  MAX_REQUEST, META_BASE_ALLOCATION, OPT, OPTION_HEADER_SIZE, REP, TF,
} from "./protocol.ts";

/** What the negotiation needs to know about the one export this server offers. */
export interface ExportDesc {
  name: string;
  description?: string;
  size: number;
  readOnly: boolean;
  blockSize: number;
}

/** Context id the server uses for base:allocation in SET_META_CONTEXT replies and BLOCK_STATUS chunks. */
export const BASE_ALLOCATION_ID = 1;

export const HANDSHAKE_FLAGS = FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES;

export function transmissionFlags(e: ExportDesc, structured: boolean): number {
  let f = TF.HAS_FLAGS | TF.SEND_FLUSH | TF.SEND_CACHE;
  // A read-only export has no cache to keep coherent, so several connections may share it.
  if (e.readOnly) f |= TF.READ_ONLY | TF.CAN_MULTI_CONN;
  else f |= TF.SEND_TRIM | TF.SEND_WRITE_ZEROES | TF.SEND_FUA;
  // DF only means something with structured replies (the spec forbids it otherwise).
  if (structured) f |= TF.SEND_DF;
  return f;
}

/** Block size constraints: any byte granularity, preferred = source block size, max = request cap. */
export function blockSizes(e: ExportDesc): { min: number; preferred: number; max: number } {
  let pref = 512;
  while (pref < e.blockSize && pref < MAX_REQUEST) pref *= 2;
  return { min: 1, preferred: pref, max: MAX_REQUEST };
}

/** What the transmission phase inherits from a successful negotiation. */
export interface Negotiated {
  structured: boolean;
  baseAllocation: boolean;
  flags: number;
  exportName: string;
}

export type State = "CLIENT_FLAGS" | "OPTION_HEADER" | "OPTION_DATA" | "OPTION_SKIP" | "TRANSMISSION" | "CLOSED";

interface Ctx {
  exp: ExportDesc;
  noZeroes: boolean;
  structured: boolean;
  baseAllocation: boolean;
  option: OptionHeader;
  skipLeft: number;
  exportName: string;
}

interface Step {
  next: State;
  send?: Uint8Array[];
  /** One line for logs when the step ends the connection. */
  why?: string;
}

interface Row {
  /** Bytes the state consumes next (all of them must be available). */
  need(c: Ctx): number;
  on(c: Ctx, bytes: Uint8Array): Step;
}

const CLIENT_FLAGS_KNOWN = FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES;

const table: Record<"CLIENT_FLAGS" | "OPTION_HEADER" | "OPTION_DATA" | "OPTION_SKIP", Row> = {
  CLIENT_FLAGS: {
    need: () => 4,
    on(c, b) {
      const f = decodeClientFlags(b);
      // The spec says the server MUST drop a client that sets flags it does not know.
      if ((f & ~CLIENT_FLAGS_KNOWN) !== 0) return { next: "CLOSED", why: `unknown client flags 0x${f.toString(16)}` };
      c.noZeroes = (f & FLAG_C_NO_ZEROES) !== 0;
      return { next: "OPTION_HEADER" };
    },
  },
  OPTION_HEADER: {
    need: () => OPTION_HEADER_SIZE,
    on(c, b) {
      const h = decodeOptionHeader(b);
      if (h.magic !== IHAVEOPT) return { next: "CLOSED", why: "bad option magic" };
      c.option = h;
      // EXPORT_NAME cannot answer with an error, and a name longer than a string may be is invalid.
      if (h.option === OPT.EXPORT_NAME && h.length > MAX_STRING) return { next: "CLOSED", why: "export name too long" };
      if (h.length > MAX_OPTION_DATA) {
        c.skipLeft = h.length;
        return { next: "OPTION_SKIP" };
      }
      return { next: "OPTION_DATA" };
    },
  },
  OPTION_DATA: {
    need: (c) => c.option.length,
    on(c, b) {
      const handler = options[c.option.option];
      if (!handler) return reply(c, REP.ERR_UNSUP, `option ${c.option.option} is not supported`);
      return handler(c, b);
    },
  },
  OPTION_SKIP: {
    // Oversized option data is discarded in bounded pieces, then refused.
    need: (c) => Math.min(c.skipLeft, MAX_OPTION_DATA),
    on(c, b) {
      c.skipLeft -= b.length;
      if (c.skipLeft > 0) return { next: "OPTION_SKIP" };
      return reply(c, REP.ERR_TOO_BIG, "option data too large");
    },
  },
};

/** A single final reply; haggling continues. */
function reply(c: Ctx, type: number, message?: string): Step {
  const frame = message === undefined ? encodeOptionReply(c.option.option, type) : encodeOptionError(c.option.option, type, message);
  return { next: "OPTION_HEADER", send: [frame] };
}

function knownName(c: Ctx, name: string) {
  return name === "" || name === c.exp.name;
}

function infoReplies(c: Ctx, infos: number[]): Uint8Array[] {
  const opt = c.option.option;
  const out = [encodeOptionReply(opt, REP.INFO, encodeInfoExport(c.exp.size, transmissionFlags(c.exp, c.structured)))];
  if (infos.includes(INFO.NAME)) out.push(encodeOptionReply(opt, REP.INFO, encodeInfoString(INFO.NAME, c.exp.name)));
  if (infos.includes(INFO.DESCRIPTION) && c.exp.description)
    out.push(encodeOptionReply(opt, REP.INFO, encodeInfoString(INFO.DESCRIPTION, c.exp.description)));
  // Sent even when not asked for: our minimum is 1, so no client can violate it.
  const bs = blockSizes(c.exp);
  out.push(encodeOptionReply(opt, REP.INFO, encodeInfoBlockSize(bs.min, bs.preferred, bs.max)));
  return out;
}

/** Contexts a query names: LIST accepts the bare namespace "base:", SET wants the leaf name. */
function matchContexts(queries: string[], list: boolean): string[] {
  if (queries.length === 0) return list ? [META_BASE_ALLOCATION] : [];
  const hit = queries.some((q) => q === META_BASE_ALLOCATION || (list && q === "base:"));
  return hit ? [META_BASE_ALLOCATION] : [];
}

function metaContext(c: Ctx, b: Uint8Array, list: boolean): Step {
  // SET replaces the selection even when it fails (the spec): a failed SET leaves none
  if (!list) c.baseAllocation = false;
  if (!c.structured) return reply(c, REP.ERR_INVALID, "structured replies must be negotiated first");
  const p = decodeMetaRequest(b);
  if (!p.ok) return reply(c, REP.ERR_INVALID, p.reason);
  if (!knownName(c, p.value.name)) return reply(c, REP.ERR_UNKNOWN, `unknown export "${p.value.name}"`);
  const names = matchContexts(p.value.queries, list);
  if (!list) c.baseAllocation = names.length > 0;
  const opt = c.option.option;
  const send = names.map((n) => encodeOptionReply(opt, REP.META_CONTEXT, encodeRepMetaContext(list ? 0 : BASE_ALLOCATION_ID, n)));
  send.push(encodeOptionReply(opt, REP.ACK));
  return { next: "OPTION_HEADER", send };
}

function infoOrGo(c: Ctx, b: Uint8Array, go: boolean): Step {
  const p = decodeInfoRequest(b);
  if (!p.ok) return reply(c, REP.ERR_INVALID, p.reason);
  if (!knownName(c, p.value.name)) return reply(c, REP.ERR_UNKNOWN, `unknown export "${p.value.name}"`);
  const send = infoReplies(c, p.value.infos);
  send.push(encodeOptionReply(c.option.option, REP.ACK));
  if (!go) return { next: "OPTION_HEADER", send };
  c.exportName = p.value.name;
  return { next: "TRANSMISSION", send };
}

/** One handler per known option; anything else is ERR_UNSUP. */
const options: Record<number, (c: Ctx, data: Uint8Array) => Step> = {
  [OPT.EXPORT_NAME](c, b) {
    const name = decodeString(b);
    // This option cannot carry an error, so the spec says: hang up.
    if (name === null || !knownName(c, name)) return { next: "CLOSED", why: `unknown export "${name ?? "?"}"` };
    c.exportName = name;
    const r = encodeExportNameReply(c.exp.size, transmissionFlags(c.exp, c.structured), c.noZeroes);
    return { next: "TRANSMISSION", send: [r] };
  },
  [OPT.ABORT](c) {
    return { next: "CLOSED", send: [encodeOptionReply(c.option.option, REP.ACK)], why: "client aborted" };
  },
  [OPT.LIST](c, b) {
    if (b.length !== 0) return reply(c, REP.ERR_INVALID, "NBD_OPT_LIST takes no data");
    const opt = c.option.option;
    return {
      next: "OPTION_HEADER",
      send: [encodeOptionReply(opt, REP.SERVER, encodeRepServer(c.exp.name, c.exp.description)), encodeOptionReply(opt, REP.ACK)],
    };
  },
  [OPT.STARTTLS](c, b) {
    if (b.length !== 0) return reply(c, REP.ERR_INVALID, "NBD_OPT_STARTTLS takes no data");
    return reply(c, REP.ERR_POLICY, "TLS is not offered by this server");
  },
  [OPT.INFO]: (c, b) => infoOrGo(c, b, false),
  [OPT.GO]: (c, b) => infoOrGo(c, b, true),
  [OPT.STRUCTURED_REPLY](c, b) {
    if (b.length !== 0) return reply(c, REP.ERR_INVALID, "NBD_OPT_STRUCTURED_REPLY takes no data");
    c.structured = true;
    return reply(c, REP.ACK);
  },
  [OPT.LIST_META_CONTEXT]: (c, b) => metaContext(c, b, true),
  [OPT.SET_META_CONTEXT]: (c, b) => metaContext(c, b, false),
};

/** One connection's negotiation. */
export class Handshake {
  state: State = "CLIENT_FLAGS";
  /** Why the connection was closed, when it was. */
  closeReason = "";
  private c: Ctx;

  constructor(exp: ExportDesc) {
    this.c = {
      exp, noZeroes: false, structured: false, baseAllocation: false,
      option: { magic: 0n, option: 0, length: 0 }, skipLeft: 0, exportName: "",
    };
  }

  /** The first bytes the server sends. */
  greeting(): Uint8Array {
    return encodeGreeting(HANDSHAKE_FLAGS);
  }

  /** Bytes the current state waits for (0 once negotiation is over). */
  need(): number {
    if (this.state === "TRANSMISSION" || this.state === "CLOSED") return 0;
    return table[this.state].need(this.c);
  }

  /**
   * Consumes as many whole steps from `buf` as possible. Returns the bytes consumed and the frames
   * to send, in order. Stops at TRANSMISSION (the rest of `buf` belongs to that phase) or CLOSED.
   */
  feed(buf: Uint8Array): { consumed: number; send: Uint8Array[] } {
    let pos = 0;
    const send: Uint8Array[] = [];
    while (this.state !== "TRANSMISSION" && this.state !== "CLOSED") {
      const row = table[this.state];
      const n = row.need(this.c);
      if (buf.length - pos < n) break;
      const step = row.on(this.c, buf.subarray(pos, pos + n));
      pos += n;
      if (step.send) send.push(...step.send);
      if (step.next === "CLOSED") this.closeReason = step.why ?? "closed";
      this.state = step.next;
    }
    return { consumed: pos, send };
  }

  /** Valid once state is TRANSMISSION. */
  negotiated(): Negotiated {
    return {
      structured: this.c.structured,
      baseAllocation: this.c.baseAllocation,
      flags: transmissionFlags(this.c.exp, this.c.structured),
      exportName: this.c.exportName,
    };
  }
}
