// Generic netlink codec (pure): nlmsghdr + genlmsghdr + nlattr TLVs, as the kernel's NBD driver
// takes them (include/uapi/linux/netlink.h, genetlink.h, nbd-netlink.h). No I/O here.

export const NETLINK_GENERIC = 16;
export const NLM_F = { REQUEST: 1, MULTI: 2, ACK: 4 } as const;
export const NLMSG = { NOOP: 1, ERROR: 2, DONE: 3 } as const;
export const GENL_ID_CTRL = 0x10;
export const CTRL_CMD_GETFAMILY = 3;
export const CTRL_ATTR = { FAMILY_ID: 1, FAMILY_NAME: 2 } as const;
export const NLA_F_NESTED = 1 << 15;

export const NBD_GENL = { FAMILY: "nbd", VERSION: 1 } as const;
export const NBD_CMD = { CONNECT: 1, DISCONNECT: 2, RECONFIGURE: 3, STATUS: 5 } as const;
export const NBD_ATTR = {
  INDEX: 1, SIZE_BYTES: 2, BLOCK_SIZE_BYTES: 3, TIMEOUT: 4, SERVER_FLAGS: 5, CLIENT_FLAGS: 6, SOCKETS: 7,
  DEAD_CONN_TIMEOUT: 8, DEVICE_LIST: 9, BACKEND_IDENTIFIER: 10,
} as const;
export const NBD_SOCK = { ITEM: 1, FD: 1 } as const;
export const NBD_CFLAG = { DESTROY_ON_DISCONNECT: 1, DISCONNECT_ON_CLOSE: 2 } as const;

export type Attr = { type: number; data: Uint8Array };

const align4 = (n: number) => (n + 3) & ~3;

export function attr(type: number, data: Uint8Array): Attr {
  return { type, data };
}
export function u32Attr(type: number, v: number): Attr {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v, true);
  return { type, data: b };
}
export function u64Attr(type: number, v: number | bigint): Attr {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return { type, data: b };
}
export function strAttr(type: number, s: string): Attr {
  return { type, data: new TextEncoder().encode(s + "\0") };
}
export function nested(type: number, children: Attr[]): Attr {
  return { type: type | NLA_F_NESTED, data: encodeAttrs(children) };
}

export function attrsLength(attrs: Attr[]): number {
  return attrs.reduce((n, a) => n + align4(4 + a.data.byteLength), 0);
}

export function encodeAttrs(attrs: Attr[]): Uint8Array {
  const out = new Uint8Array(attrsLength(attrs));
  const dv = new DataView(out.buffer);
  let o = 0;
  for (const a of attrs) {
    dv.setUint16(o, 4 + a.data.byteLength, true);
    dv.setUint16(o + 2, a.type, true);
    out.set(a.data, o + 4);
    o += align4(4 + a.data.byteLength);
  }
  return out;
}

export function decodeAttrs(b: Uint8Array): Map<number, Uint8Array> {
  const m = new Map<number, Uint8Array>();
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let o = 0;
  while (o + 4 <= b.byteLength) {
    const len = dv.getUint16(o, true);
    const type = dv.getUint16(o + 2, true) & ~NLA_F_NESTED;
    if (len < 4 || o + len > b.byteLength) break;
    m.set(type, b.subarray(o + 4, o + len));
    o += align4(len);
  }
  return m;
}

/** A generic netlink request: nlmsghdr(16) + genlmsghdr(4) + attributes. */
export function encodeGenlRequest(family: number, cmd: number, version: number, seq: number, attrs: Attr[], flags = NLM_F.REQUEST | NLM_F.ACK): Uint8Array {
  const body = encodeAttrs(attrs);
  const out = new Uint8Array(20 + body.byteLength);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, out.byteLength, true);
  dv.setUint16(4, family, true);
  dv.setUint16(6, flags, true);
  dv.setUint32(8, seq, true);
  dv.setUint32(12, 0, true);
  out[16] = cmd;
  out[17] = version;
  out.set(body, 20);
  return out;
}

export type NlMessage =
  | { kind: "error"; seq: number; error: number }
  | { kind: "done"; seq: number }
  | { kind: "genl"; seq: number; type: number; cmd: number; attrs: Map<number, Uint8Array> };

/** Splits a datagram into netlink messages. */
export function decodeMessages(b: Uint8Array): NlMessage[] {
  const out: NlMessage[] = [];
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let o = 0;
  while (o + 16 <= b.byteLength) {
    const len = dv.getUint32(o, true);
    const type = dv.getUint16(o + 4, true);
    const seq = dv.getUint32(o + 8, true);
    if (len < 16 || o + len > b.byteLength) break;
    if (type === NLMSG.ERROR) out.push({ kind: "error", seq, error: len >= 20 ? -dv.getInt32(o + 16, true) : 0 });
    else if (type === NLMSG.DONE) out.push({ kind: "done", seq });
    else if (len >= 20) out.push({ kind: "genl", seq, type, cmd: b[o + 16]!, attrs: decodeAttrs(b.subarray(o + 20, o + len)) });
    o += align4(len);
  }
  return out;
}

/** Attributes for NBD_CMD_CONNECT with one socket. */
export function nbdConnectAttrs(o: { fd: number; size: number; blockSize: number; serverFlags: number; timeoutS: number; index?: number; identifier?: string }): Attr[] {
  const attrs: Attr[] = [
    u64Attr(NBD_ATTR.SIZE_BYTES, o.size),
    u64Attr(NBD_ATTR.BLOCK_SIZE_BYTES, o.blockSize),
    u64Attr(NBD_ATTR.SERVER_FLAGS, o.serverFlags),
    u64Attr(NBD_ATTR.TIMEOUT, o.timeoutS),
    u64Attr(NBD_ATTR.DEAD_CONN_TIMEOUT, o.timeoutS),
    nested(NBD_ATTR.SOCKETS, [nested(NBD_SOCK.ITEM, [u32Attr(NBD_SOCK.FD, o.fd)])]),
  ];
  if (o.index !== undefined) attrs.unshift(u32Attr(NBD_ATTR.INDEX, o.index));
  if (o.identifier) attrs.push(strAttr(NBD_ATTR.BACKEND_IDENTIFIER, o.identifier));
  return attrs;
}
