// IPv4 routes: add with SIOCADDRT (struct rtentry, x86-64 layout), read from /proc/net/route.
import { readFileSync } from "node:fs";
import { AF, cstr, ioctl, ptr, SysError } from "../sys/ffi.ts";
import { formatIPv4, ipToBytes, maskToPrefix, networkOf, prefixToMask } from "./addr.ts";
import { SIOC, withCtlSocket } from "./iface.ts";

export const RTF = { UP: 0x1, GATEWAY: 0x2, HOST: 0x4 } as const;

// struct rtentry (linux/route.h) on x86-64: unsigned long rt_pad1 @0; sockaddr rt_dst @8,
// rt_gateway @24, rt_genmask @40; u16 rt_flags @56; i16 rt_pad2 @58; unsigned long rt_pad3 @64;
// void *rt_pad4 @72; i16 rt_metric @80; char *rt_dev @88; unsigned long rt_mtu @96, rt_window @104;
// u16 rt_irtt @112; size 120.
const RT = { DST: 8, GATEWAY: 24, GENMASK: 40, FLAGS: 56, METRIC: 80, DEV: 88, SIZE: 120 } as const;

export interface RouteSpec {
  /** destination network (host bits are cleared) */
  dest: string;
  prefix: number;
  /** next hop; omit or 0.0.0.0 for an on-link route */
  gateway?: string;
  dev: string;
  /** route priority as `ip route` shows it (default 0) */
  metric?: number;
}

/** Builds the struct rtentry bytes; `devName` must stay alive until the ioctl returns. */
export function rtentry(r: RouteSpec, devName: Uint8Array): Uint8Array {
  const b = new Uint8Array(RT.SIZE);
  const dv = new DataView(b.buffer);
  const sin = (off: number, ip: string) => {
    dv.setUint16(off, AF.INET, true);
    ipToBytes(ip, b, off + 4);
  };
  const onLink = !r.gateway || r.gateway === "0.0.0.0";
  sin(RT.DST, networkOf(r.dest, r.prefix));
  sin(RT.GATEWAY, onLink ? "0.0.0.0" : r.gateway!);
  sin(RT.GENMASK, prefixToMask(r.prefix));
  let flags = RTF.UP;
  if (!onLink) flags |= RTF.GATEWAY;
  if (r.prefix === 32) flags |= RTF.HOST;
  dv.setUint16(RT.FLAGS, flags, true);
  // the kernel stores rt_metric - 1 as the priority (0 means "unset" → 0)
  dv.setInt16(RT.METRIC, r.metric ? r.metric + 1 : 0, true);
  dv.setBigUint64(RT.DEV, BigInt(ptr(devName)), true);
  return b;
}

function describe(r: RouteSpec): string {
  const dst = r.prefix === 0 ? "default" : `${networkOf(r.dest, r.prefix)}/${r.prefix}`;
  return `${dst}${r.gateway && r.gateway !== "0.0.0.0" ? ` via ${r.gateway}` : ""} dev ${r.dev}`;
}

/**
 * Adds a route. An identical route already present is fine (EEXIST), so re-running DHCP works.
 * A gateway outside every on-link subnet gets a host route to it first (as dhclient scripts do).
 */
export function addRoute(r: RouteSpec): void {
  const dev = cstr(r.dev);
  const call = (spec: RouteSpec) =>
    withCtlSocket((fd) => ioctl(fd, SIOC.ADDRT, rtentry(spec, dev), `ioctl(SIOCADDRT ${describe(spec)})`));
  try {
    call(r);
  } catch (e) {
    if (e instanceof SysError && e.code === "EEXIST") return;
    if (e instanceof SysError && e.code === "ENETUNREACH" && r.gateway && r.gateway !== "0.0.0.0") {
      try {
        call({ dest: r.gateway, prefix: 32, dev: r.dev });
      } catch (e2) {
        if (!(e2 instanceof SysError && e2.code === "EEXIST")) throw e2;
      }
      call(r);
      return;
    }
    throw e;
  }
}

export function addDefaultRoute(gateway: string, dev: string): void {
  addRoute({ dest: "0.0.0.0", prefix: 0, gateway, dev });
}

export function deleteRoute(r: RouteSpec): void {
  const dev = cstr(r.dev);
  withCtlSocket((fd) => ioctl(fd, SIOC.DELRT, rtentry(r, dev), `ioctl(SIOCDELRT ${describe(r)})`));
}

export interface RouteEntry {
  dev: string;
  dest: string;
  prefix: number;
  gateway: string | null;
  flags: number;
  metric: number;
}

/** /proc/net/route stores addresses as host-order (little-endian) hex of the network-order bytes. */
function hexIp(h: string): string {
  const n = parseInt(h, 16) >>> 0;
  return formatIPv4(((n & 255) << 24 | ((n >>> 8) & 255) << 16 | ((n >>> 16) & 255) << 8 | (n >>> 24)) >>> 0);
}

export function parseProcRoute(text: string): RouteEntry[] {
  const out: RouteEntry[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [dev, dst, gw, flags, , , metric, mask] = f as [string, string, string, string, string, string, string, string];
    const fl = parseInt(flags, 16);
    if (!(fl & RTF.UP)) continue;
    out.push({
      dev,
      dest: hexIp(dst),
      prefix: maskToPrefix(hexIp(mask)) ?? 32,
      gateway: fl & RTF.GATEWAY ? hexIp(gw) : null,
      flags: fl,
      metric: Number(metric) || 0,
    });
  }
  return out;
}

export function readRoutes(path = "/proc/net/route"): RouteEntry[] {
  return parseProcRoute(readFileSync(path, "utf8"));
}

/** `ip route`-like lines. */
export function formatRoutes(routes: RouteEntry[] = readRoutes()): string[] {
  return routes.map((r) => {
    const dst = r.prefix === 0 ? "default" : `${r.dest}/${r.prefix}`;
    const via = r.gateway ? ` via ${r.gateway}` : "";
    const scope = r.gateway ? "" : " scope link";
    const metric = r.metric ? ` metric ${r.metric}` : "";
    return `${dst}${via} dev ${r.dev}${scope}${metric}`;
  });
}
