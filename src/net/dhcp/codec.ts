// DHCPv4 message codec (RFC 2131 §2 layout, RFC 2132 options), in the style of dns-packet:
// encode(packet, buf?, offset?) / decode(buf, offset?) / encodingLength(packet), with
// encode.bytes and decode.bytes holding the byte count of the last call. Pure, no I/O.
// decode() on untrusted bytes throws nothing but DhcpDecodeError.
import { ipFromBytes, ipToBytes } from "../addr.ts";
import {
  DhcpDecodeError,
  type DhcpOptions,
  interpretOptions,
  OPT,
  optionsToRaw,
  rawLength,
  scanOptions,
  writeRaw,
} from "./options.ts";

export { DhcpDecodeError, MSG, MSG_NAMES, OPT } from "./options.ts";
export type { ClasslessRoute, DhcpOptions, RawOption } from "./options.ts";

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;
export const FLAG_BROADCAST = 0x8000;
export const MAGIC_COOKIE = 0x63825363;
/** Fixed BOOTP header (236) + magic cookie (4). */
export const HEADER_LEN = 240;
/** RFC 1542 §2.1: some relays and servers drop BOOTP messages shorter than 300 bytes. */
export const MIN_MESSAGE_LEN = 300;

const SNAME_OFF = 44, SNAME_LEN = 64, FILE_OFF = 108, FILE_LEN = 128;

export interface DhcpPacket {
  op: number;
  /** hardware type, 1 = Ethernet */
  htype: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** client hardware address, hlen bytes (≤ 16) */
  chaddr: Uint8Array;
  sname: string;
  file: string;
  options: DhcpOptions;
}

/** A packet with defaults filled in, for building requests. */
export function packet(p: Partial<DhcpPacket> & { xid: number; chaddr: Uint8Array }): DhcpPacket {
  return {
    op: BOOTREQUEST, htype: 1, hops: 0, secs: 0, flags: 0,
    ciaddr: "0.0.0.0", yiaddr: "0.0.0.0", siaddr: "0.0.0.0", giaddr: "0.0.0.0",
    sname: "", file: "", options: {},
    ...p,
  };
}

export function encodingLength(p: DhcpPacket): number {
  return Math.max(MIN_MESSAGE_LEN, HEADER_LEN + rawLength(optionsToRaw(p.options)) + 1);
}

function writeString(buf: Uint8Array, off: number, max: number, s: string, what: string) {
  if (s.length > max - 1) throw new RangeError(`dhcp: ${what} longer than ${max - 1} bytes`);
  for (let i = 0; i < s.length; i++) buf[off + i] = s.charCodeAt(i) & 0xff;
}

export function encode(p: DhcpPacket, buf?: Uint8Array, offset = 0): Uint8Array {
  const raw = optionsToRaw(p.options);
  const len = Math.max(MIN_MESSAGE_LEN, HEADER_LEN + rawLength(raw) + 1);
  if (p.chaddr.length > 16) throw new RangeError("dhcp: chaddr longer than 16 bytes");
  buf ??= new Uint8Array(len + offset);
  if (buf.length - offset < len) throw new RangeError(`dhcp: buffer too small (${buf.length - offset} < ${len})`);
  const b = buf.subarray(offset, offset + len);
  b.fill(0);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  b[0] = p.op;
  b[1] = p.htype;
  b[2] = p.chaddr.length;
  b[3] = p.hops;
  dv.setUint32(4, p.xid >>> 0);
  dv.setUint16(8, p.secs);
  dv.setUint16(10, p.flags);
  ipToBytes(p.ciaddr, b, 12);
  ipToBytes(p.yiaddr, b, 16);
  ipToBytes(p.siaddr, b, 20);
  ipToBytes(p.giaddr, b, 24);
  b.set(p.chaddr, 28);
  writeString(b, SNAME_OFF, SNAME_LEN, p.sname, "sname");
  writeString(b, FILE_OFF, FILE_LEN, p.file, "file");
  dv.setUint32(236, MAGIC_COOKIE);
  const end = writeRaw(raw, b, HEADER_LEN);
  b[end] = OPT.END; // the rest is already zero (PAD)
  encode.bytes = len;
  return buf;
}
encode.bytes = 0;

function readString(b: Uint8Array, off: number, max: number): string {
  let s = "";
  for (let i = 0; i < max; i++) {
    const c = b[off + i]!;
    if (c === 0) break;
    s += String.fromCharCode(c);
  }
  return s;
}

export function decode(buf: Uint8Array, offset = 0): DhcpPacket {
  if (!(buf instanceof Uint8Array)) throw new DhcpDecodeError("input is not bytes");
  if (!Number.isInteger(offset) || offset < 0 || offset > buf.length) throw new DhcpDecodeError(`bad offset ${offset}`);
  const b = buf.subarray(offset);
  if (b.length < HEADER_LEN) throw new DhcpDecodeError(`message too short (${b.length} bytes, need ≥ ${HEADER_LEN})`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (dv.getUint32(236) !== MAGIC_COOKIE) throw new DhcpDecodeError("no DHCP magic cookie (plain BOOTP?)");
  const hlen = b[2]!;
  if (hlen > 16) throw new DhcpDecodeError(`hlen ${hlen} > 16`);

  const raw = new Map<number, Uint8Array[]>();
  const consumed = scanOptions(b, HEADER_LEN, b.length, raw);
  // Option overload (52): more options in file and/or sname, read after the main area (RFC 2131 §4.1).
  let overload = 0;
  const ov = raw.get(OPT.OVERLOAD);
  if (ov && ov.length === 1 && ov[0]!.length === 1) overload = ov[0]![0]!;
  if (overload & 1) scanOptions(b, FILE_OFF, FILE_OFF + FILE_LEN, raw);
  if (overload & 2) scanOptions(b, SNAME_OFF, SNAME_OFF + SNAME_LEN, raw);

  const p: DhcpPacket = {
    op: b[0]!,
    htype: b[1]!,
    hops: b[3]!,
    xid: dv.getUint32(4),
    secs: dv.getUint16(8),
    flags: dv.getUint16(10),
    ciaddr: ipFromBytes(b, 12),
    yiaddr: ipFromBytes(b, 16),
    siaddr: ipFromBytes(b, 20),
    giaddr: ipFromBytes(b, 24),
    chaddr: Uint8Array.from(b.subarray(28, 28 + hlen)),
    sname: overload & 2 ? "" : readString(b, SNAME_OFF, SNAME_LEN),
    file: overload & 1 ? "" : readString(b, FILE_OFF, FILE_LEN),
    options: interpretOptions(raw),
  };
  decode.bytes = consumed;
  return p;
}
decode.bytes = 0;
