// IPv4 address helpers shared by the DHCP codec, ip= parsing and interface configuration.
// Addresses travel as dotted-quad strings (what users type and logs show); numbers only inside.

/** Dotted quad → 32-bit unsigned number, or null when not a valid IPv4 address. */
export function parseIPv4(s: string): number | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return null;
    const v = Number(p);
    if (v > 255) return null;
    n = n * 256 + v;
  }
  return n >>> 0;
}

export function isIPv4(s: string): boolean {
  return parseIPv4(s) !== null;
}

export function formatIPv4(n: number): string {
  n >>>= 0;
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** 4 bytes (network order) at `off` → dotted quad. The caller has checked the length. */
export function ipFromBytes(b: Uint8Array, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** Writes a dotted quad as 4 network-order bytes; throws on an invalid address (encoder input is ours). */
export function ipToBytes(s: string, out: Uint8Array, off = 0): void {
  const n = parseIPv4(s);
  if (n === null) throw new TypeError(`not an IPv4 address: '${s}'`);
  out[off] = n >>> 24;
  out[off + 1] = (n >>> 16) & 255;
  out[off + 2] = (n >>> 8) & 255;
  out[off + 3] = n & 255;
}

export function prefixToMask(prefix: number): string {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new RangeError(`bad prefix length ${prefix}`);
  return formatIPv4(prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);
}

/** Netmask → prefix length, or null when the mask is not contiguous ones then zeros. */
export function maskToPrefix(mask: string): number | null {
  const n = parseIPv4(mask);
  if (n === null) return null;
  const inv = ~n >>> 0;
  // contiguous iff the inverted mask is 2^k - 1
  if ((inv & (inv + 1)) !== 0) return null;
  return 32 - Math.log2(inv + 1);
}

/** The network address of `ip` under `prefix`. */
export function networkOf(ip: string, prefix: number): string {
  const n = parseIPv4(ip) ?? 0;
  const m = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return formatIPv4((n & m) >>> 0);
}

export function broadcastOf(ip: string, prefix: number): string {
  const n = parseIPv4(ip) ?? 0;
  const m = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return formatIPv4((n | ~m) >>> 0);
}

/** True when `ip` lies inside `net/prefix`. */
export function inSubnet(ip: string, net: string, prefix: number): boolean {
  return networkOf(ip, prefix) === networkOf(net, prefix);
}

/** Classful default mask (what the kernel assumes when ip= gives no netmask). */
export function classfulPrefix(ip: string): number {
  const first = (parseIPv4(ip) ?? 0) >>> 24;
  if (first < 128) return 8;
  if (first < 192) return 16;
  return 24;
}

/** "52:54:00:12:34:56" → 6 bytes; null when malformed. */
export function parseMac(s: string): Uint8Array | null {
  const parts = s.trim().split(":");
  if (parts.length < 1 || parts.length > 16 || !parts.every((p) => /^[0-9a-fA-F]{2}$/.test(p))) return null;
  return Uint8Array.from(parts.map((p) => parseInt(p, 16)));
}

export function formatMac(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(":");
}
