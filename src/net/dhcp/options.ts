// DHCP options (RFC 2132, RFC 3442 classless routes, RFC 3396 long options): typed values ⇄ TLV bytes.
// Pure code: no I/O. Decoding validates every length and throws only DhcpDecodeError.
import { ipFromBytes, ipToBytes, parseIPv4 } from "../addr.ts";
import { concatBytes } from "../../sys/bytes.ts";

export class DhcpDecodeError extends Error {
  constructor(message: string) {
    super(`dhcp: ${message}`);
    this.name = "DhcpDecodeError";
  }
}

export const OPT = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  DOMAIN_NAME: 15,
  MTU: 26,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAM_REQUEST_LIST: 55,
  MAX_MESSAGE_SIZE: 57,
  VENDOR_CLASS_ID: 60,
  CLIENT_ID: 61,
  CLASSLESS_ROUTES: 121,
  END: 255,
} as const;

export const MSG = { DISCOVER: 1, OFFER: 2, REQUEST: 3, DECLINE: 4, ACK: 5, NAK: 6, RELEASE: 7, INFORM: 8 } as const;
export const MSG_NAMES: Record<number, string> = {
  1: "DISCOVER", 2: "OFFER", 3: "REQUEST", 4: "DECLINE", 5: "ACK", 6: "NAK", 7: "RELEASE", 8: "INFORM",
};

export interface ClasslessRoute {
  /** destination network, dotted quad (host bits zero) */
  dest: string;
  prefix: number;
  /** next hop; 0.0.0.0 means on-link (RFC 3442) */
  gateway: string;
}

export interface RawOption {
  code: number;
  data: Uint8Array;
}

export interface DhcpOptions {
  /** codes of options that were malformed and left out (the packet is still used, as the kernel's
   *  ipconfig and dhclient use it: one bad option must not cost a whole offer) */
  malformed?: number[];
  messageType?: number;
  subnetMask?: string;
  routers?: string[];
  dns?: string[];
  hostname?: string;
  domainName?: string;
  mtu?: number;
  requestedIp?: string;
  leaseTime?: number;
  /** 1 = file holds options, 2 = sname, 3 = both */
  overload?: number;
  serverId?: string;
  paramRequestList?: number[];
  maxMessageSize?: number;
  vendorClassId?: string;
  clientId?: Uint8Array;
  classlessRoutes?: ClasslessRoute[];
  /** options we do not interpret, kept verbatim (repeats already concatenated) */
  other?: RawOption[];
}

// ---------- decoding ----------

/**
 * Walks a TLV area and appends each option's data to `into` (RFC 3396: repeated codes concatenate).
 * Returns the offset just past END, or `end` when the area has no END.
 */
export function scanOptions(buf: Uint8Array, start: number, end: number, into: Map<number, Uint8Array[]>): number {
  let i = start;
  while (i < end) {
    const code = buf[i++]!;
    if (code === OPT.PAD) continue;
    if (code === OPT.END) return i;
    if (i >= end) throw new DhcpDecodeError(`option ${code} at offset ${i - 1} has no length byte`);
    const len = buf[i++]!;
    if (i + len > end) throw new DhcpDecodeError(`option ${code} length ${len} runs past the end (${end - i} bytes left)`);
    const list = into.get(code);
    const data = buf.subarray(i, i + len);
    if (list) list.push(data);
    else into.set(code, [data]);
    i += len;
  }
  return end;
}


function need(code: number, d: Uint8Array, ok: boolean, what: string) {
  if (!ok) throw new DhcpDecodeError(`option ${code}: ${what}, got length ${d.length}`);
}
function u8(code: number, d: Uint8Array): number {
  need(code, d, d.length === 1, "expected 1 byte");
  return d[0]!;
}
function u16(code: number, d: Uint8Array): number {
  need(code, d, d.length === 2, "expected 2 bytes");
  return (d[0]! << 8) | d[1]!;
}
function u32(code: number, d: Uint8Array): number {
  need(code, d, d.length === 4, "expected 4 bytes");
  return ((d[0]! << 24) | (d[1]! << 16) | (d[2]! << 8) | d[3]!) >>> 0;
}
function ip(code: number, d: Uint8Array): string {
  need(code, d, d.length === 4, "expected an IPv4 address (4 bytes)");
  return ipFromBytes(d);
}
function ips(code: number, d: Uint8Array): string[] {
  need(code, d, d.length >= 4 && d.length % 4 === 0, "expected a list of IPv4 addresses (multiple of 4 bytes)");
  const out: string[] = [];
  for (let i = 0; i < d.length; i += 4) out.push(ipFromBytes(d, i));
  return out;
}
function text(d: Uint8Array): string {
  // NVT ASCII; some servers NUL-terminate. latin1 maps every byte, so this never throws.
  let end = d.indexOf(0);
  if (end < 0) end = d.length;
  let s = "";
  for (let i = 0; i < end; i++) s += String.fromCharCode(d[i]!);
  return s;
}

/** RFC 3442: width byte, ceil(width/8) significant destination octets, 4 router octets; repeated. */
export function decodeClasslessRoutes(d: Uint8Array): ClasslessRoute[] {
  const out: ClasslessRoute[] = [];
  let i = 0;
  while (i < d.length) {
    const prefix = d[i++]!;
    if (prefix > 32) throw new DhcpDecodeError(`option 121: prefix width ${prefix} > 32`);
    const sig = (prefix + 7) >> 3;
    if (i + sig + 4 > d.length) throw new DhcpDecodeError(`option 121: route /${prefix} truncated`);
    const dst = new Uint8Array(4);
    dst.set(d.subarray(i, i + sig));
    i += sig;
    out.push({ dest: ipFromBytes(dst), prefix, gateway: ipFromBytes(d, i) });
    i += 4;
  }
  if (out.length === 0) throw new DhcpDecodeError("option 121: empty");
  return out;
}

/** Interprets collected raw options (see scanOptions) into typed values. */
export function interpretOptions(raw: Map<number, Uint8Array[]>): DhcpOptions {
  const o: DhcpOptions = {};
  for (const [code, parts] of raw) {
    try {
      interpretOne(o, code, concatBytes(parts));
    } catch (e) {
      // without a valid message type the packet means nothing: that one stays fatal
      if (code === OPT.MESSAGE_TYPE || !(e instanceof DhcpDecodeError)) throw e;
      (o.malformed ??= []).push(code);
    }
  }
  return o;
}

function interpretOne(o: DhcpOptions, code: number, d: Uint8Array): void {
  {
    switch (code) {
      case OPT.MESSAGE_TYPE: o.messageType = u8(code, d); break;
      case OPT.SUBNET_MASK: o.subnetMask = ip(code, d); break;
      case OPT.ROUTER: o.routers = ips(code, d); break;
      case OPT.DNS: o.dns = ips(code, d); break;
      case OPT.HOSTNAME: need(code, d, d.length >= 1, "empty"); o.hostname = text(d); break;
      case OPT.DOMAIN_NAME: need(code, d, d.length >= 1, "empty"); o.domainName = text(d); break;
      case OPT.MTU: o.mtu = u16(code, d); break;
      case OPT.REQUESTED_IP: o.requestedIp = ip(code, d); break;
      case OPT.LEASE_TIME: o.leaseTime = u32(code, d); break;
      case OPT.OVERLOAD: o.overload = u8(code, d); break;
      case OPT.SERVER_ID: o.serverId = ip(code, d); break;
      case OPT.PARAM_REQUEST_LIST: need(code, d, d.length >= 1, "empty"); o.paramRequestList = Array.from(d); break;
      case OPT.MAX_MESSAGE_SIZE: o.maxMessageSize = u16(code, d); break;
      case OPT.VENDOR_CLASS_ID: need(code, d, d.length >= 1, "empty"); o.vendorClassId = text(d); break;
      case OPT.CLIENT_ID: need(code, d, d.length >= 2, "shorter than 2 bytes"); o.clientId = Uint8Array.from(d); break;
      case OPT.CLASSLESS_ROUTES: o.classlessRoutes = decodeClasslessRoutes(d); break;
      default:
        (o.other ??= []).push({ code, data: Uint8Array.from(d) });
    }
  }
}

// ---------- encoding ----------

const latin1 = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
const ipList = (list: string[]) => {
  const b = new Uint8Array(list.length * 4);
  list.forEach((a, i) => ipToBytes(a, b, i * 4));
  return b;
};
const ip1 = (a: string) => ipList([a]);
const be16 = (v: number) => Uint8Array.of((v >> 8) & 255, v & 255);
const be32 = (v: number) => Uint8Array.of((v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255);

export function encodeClasslessRoutes(routes: ClasslessRoute[]): Uint8Array {
  const parts: number[] = [];
  for (const r of routes) {
    if (!Number.isInteger(r.prefix) || r.prefix < 0 || r.prefix > 32) throw new RangeError(`bad prefix /${r.prefix}`);
    const dst = new Uint8Array(4);
    ipToBytes(r.dest, dst);
    const gw = new Uint8Array(4);
    ipToBytes(r.gateway, gw);
    parts.push(r.prefix, ...dst.subarray(0, (r.prefix + 7) >> 3), ...gw);
  }
  return Uint8Array.from(parts);
}

/** Typed options → (code, data) pairs in a stable order (message type first, as servers expect). */
export function optionsToRaw(o: DhcpOptions): RawOption[] {
  const out: RawOption[] = [];
  const add = (code: number, data: Uint8Array | undefined) => data && out.push({ code, data });
  if (o.messageType !== undefined) add(OPT.MESSAGE_TYPE, Uint8Array.of(o.messageType));
  if (o.subnetMask !== undefined) add(OPT.SUBNET_MASK, ip1(o.subnetMask));
  if (o.routers?.length) add(OPT.ROUTER, ipList(o.routers));
  if (o.dns?.length) add(OPT.DNS, ipList(o.dns));
  if (o.hostname) add(OPT.HOSTNAME, latin1(o.hostname));
  if (o.domainName) add(OPT.DOMAIN_NAME, latin1(o.domainName));
  if (o.mtu !== undefined) add(OPT.MTU, be16(o.mtu));
  if (o.requestedIp !== undefined) add(OPT.REQUESTED_IP, ip1(o.requestedIp));
  if (o.leaseTime !== undefined) add(OPT.LEASE_TIME, be32(o.leaseTime));
  if (o.overload !== undefined) add(OPT.OVERLOAD, Uint8Array.of(o.overload));
  if (o.serverId !== undefined) add(OPT.SERVER_ID, ip1(o.serverId));
  if (o.paramRequestList?.length) add(OPT.PARAM_REQUEST_LIST, Uint8Array.from(o.paramRequestList));
  if (o.maxMessageSize !== undefined) add(OPT.MAX_MESSAGE_SIZE, be16(o.maxMessageSize));
  if (o.vendorClassId) add(OPT.VENDOR_CLASS_ID, latin1(o.vendorClassId));
  if (o.clientId?.length) add(OPT.CLIENT_ID, o.clientId);
  if (o.classlessRoutes?.length) add(OPT.CLASSLESS_ROUTES, encodeClasslessRoutes(o.classlessRoutes));
  for (const r of o.other ?? []) add(r.code, r.data);
  return out;
}

/** Bytes the TLVs take, counting RFC 3396 splitting of data longer than 255 bytes. */
export function rawLength(raw: RawOption[]): number {
  let n = 0;
  for (const r of raw) {
    const chunks = Math.max(1, Math.ceil(r.data.length / 255));
    n += chunks * 2 + r.data.length;
  }
  return n;
}

/** Writes TLVs at `off` (no END); returns the new offset. */
export function writeRaw(raw: RawOption[], buf: Uint8Array, off: number): number {
  for (const r of raw) {
    if (r.code === OPT.PAD || r.code === OPT.END || r.code < 0 || r.code > 255) throw new RangeError(`bad option code ${r.code}`);
    let i = 0;
    do {
      const len = Math.min(255, r.data.length - i);
      buf[off++] = r.code;
      buf[off++] = len;
      buf.set(r.data.subarray(i, i + len), off);
      off += len;
      i += len;
    } while (i < r.data.length);
  }
  return off;
}

/** Valid IPv4 check used by callers building options from user input. */
export const validIp = (s: string) => parseIPv4(s) !== null;
