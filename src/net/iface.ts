// Network interfaces: list and read them from /sys/class/net, configure them with the classic
// SIOCSIF* ioctls on an AF_INET datagram socket (no `ip` binary, no netlink needed for this much).
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { AF, closeFd, ioctl, SOCK, socket, SysError } from "../sys/ffi.ts";
import { broadcastOf, formatIPv4, ipFromBytes, ipToBytes, maskToPrefix, parseMac, prefixToMask } from "./addr.ts";

export const SIOC = {
  GIFFLAGS: 0x8913, SIFFLAGS: 0x8914, GIFADDR: 0x8915, SIFADDR: 0x8916, SIFBRDADDR: 0x891a,
  GIFNETMASK: 0x891b, SIFNETMASK: 0x891c, GIFMTU: 0x8921, SIFMTU: 0x8922, ADDRT: 0x890b, DELRT: 0x890c,
} as const;
export const IFF = { UP: 0x1, BROADCAST: 0x2, LOOPBACK: 0x8, RUNNING: 0x40, MULTICAST: 0x1000, LOWER_UP: 0x10000 } as const;
export const IFNAMSIZ = 16;
const IFREQ_SIZE = 40;
const ARPHRD_ETHER = 1;

let sysNet = "/sys/class/net";
/** For tests: read interfaces from another directory laid out like /sys/class/net. */
export function setSysNetDir(dir: string) {
  sysNet = dir;
}

function sysRead(ifname: string, file: string): string | null {
  try {
    return readFileSync(`${sysNet}/${ifname}/${file}`, "utf8").trim();
  } catch {
    return null; // e.g. `carrier` reads EINVAL while the interface is down
  }
}

/** Interface names, sorted; by default only Ethernet-like ones (ARPHRD_ETHER) other than lo. */
export function listInterfaces(opts: { all?: boolean } = {}): string[] {
  let names: string[];
  try {
    names = readdirSync(sysNet);
  } catch {
    return [];
  }
  names.sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  if (opts.all) return names;
  return names.filter((n) => n !== "lo" && sysRead(n, "type") === String(ARPHRD_ETHER));
}

export function interfaceExists(ifname: string): boolean {
  return existsSync(`${sysNet}/${ifname}`);
}

export function readMac(ifname: string): Uint8Array {
  const s = sysRead(ifname, "address");
  const mac = s ? parseMac(s) : null;
  if (!mac || mac.length !== 6) throw new Error(`${ifname}: no Ethernet address in ${sysNet}/${ifname}/address ('${s ?? "missing"}')`);
  return mac;
}
export function readCarrier(ifname: string): boolean {
  return sysRead(ifname, "carrier") === "1";
}
export function readOperstate(ifname: string): string {
  return sysRead(ifname, "operstate") ?? "unknown";
}
export function readMtu(ifname: string): number | null {
  const s = sysRead(ifname, "mtu");
  return s && /^\d+$/.test(s) ? Number(s) : null;
}

// ---- ioctl plumbing ----

function ifreq(ifname: string): Uint8Array {
  if (ifname.length === 0 || ifname.length >= IFNAMSIZ || /[\0/\s]/.test(ifname)) throw new Error(`bad interface name '${ifname}'`);
  const b = new Uint8Array(IFREQ_SIZE);
  b.set(Buffer.from(ifname, "utf8"), 0);
  return b;
}
/** struct sockaddr_in at ifr_addr (offset 16). */
function setSockaddr(req: Uint8Array, ip: string, off = 16) {
  const dv = new DataView(req.buffer, req.byteOffset);
  dv.setUint16(off, AF.INET, true);
  ipToBytes(ip, req, off + 4);
}

/** Runs fn with a throwaway AF_INET socket, the handle SIOC* ioctls need. */
export function withCtlSocket<T>(fn: (fd: number) => T): T {
  const fd = socket(AF.INET, SOCK.DGRAM | SOCK.CLOEXEC);
  try {
    return fn(fd);
  } finally {
    closeFd(fd);
  }
}

export function getFlags(ifname: string): number {
  return withCtlSocket((fd) => {
    const req = ifreq(ifname);
    ioctl(fd, SIOC.GIFFLAGS, req, `ioctl(SIOCGIFFLAGS, ${ifname})`);
    return new DataView(req.buffer).getUint16(16, true);
  });
}

/** Sets IFF_UP (keeping the other flags). */
export function setUp(ifname: string, up = true): void {
  withCtlSocket((fd) => {
    const req = ifreq(ifname);
    ioctl(fd, SIOC.GIFFLAGS, req, `ioctl(SIOCGIFFLAGS, ${ifname})`);
    const dv = new DataView(req.buffer);
    const flags = dv.getUint16(16, true);
    dv.setUint16(16, up ? flags | IFF.UP : flags & ~IFF.UP, true);
    ioctl(fd, SIOC.SIFFLAGS, req, `ioctl(SIOCSIFFLAGS ${up ? "up" : "down"}, ${ifname})`);
  });
}

/** Assigns address/prefix and the matching broadcast; the kernel adds the subnet route itself. */
export function setAddress(ifname: string, address: string, prefix: number): void {
  withCtlSocket((fd) => {
    let req = ifreq(ifname);
    setSockaddr(req, address);
    ioctl(fd, SIOC.SIFADDR, req, `ioctl(SIOCSIFADDR ${address}, ${ifname})`);
    req = ifreq(ifname);
    setSockaddr(req, prefixToMask(prefix));
    ioctl(fd, SIOC.SIFNETMASK, req, `ioctl(SIOCSIFNETMASK /${prefix}, ${ifname})`);
    if (prefix < 31) {
      req = ifreq(ifname);
      setSockaddr(req, broadcastOf(address, prefix));
      ioctl(fd, SIOC.SIFBRDADDR, req, `ioctl(SIOCSIFBRDADDR, ${ifname})`);
    }
  });
}

/** Removes the interface's IPv4 address (SIOCSIFADDR 0.0.0.0 deletes it), e.g. before a new DHCP run. */
export function clearAddress(ifname: string): void {
  withCtlSocket((fd) => {
    const req = ifreq(ifname);
    setSockaddr(req, "0.0.0.0");
    try {
      ioctl(fd, SIOC.SIFADDR, req, `ioctl(SIOCSIFADDR 0.0.0.0, ${ifname})`);
    } catch (e) {
      if (!(e instanceof SysError && e.code === "EADDRNOTAVAIL")) throw e;
    }
  });
}

export function setMtu(ifname: string, mtu: number): void {
  withCtlSocket((fd) => {
    const req = ifreq(ifname);
    new DataView(req.buffer).setInt32(16, mtu, true);
    ioctl(fd, SIOC.SIFMTU, req, `ioctl(SIOCSIFMTU ${mtu}, ${ifname})`);
  });
}

/** The interface's primary IPv4 address and prefix, or null when it has none. */
export function getAddress(ifname: string): { address: string; prefix: number } | null {
  return withCtlSocket((fd) => {
    const get = (req: number, what: string) => {
      const r = ifreq(ifname);
      try {
        ioctl(fd, req, r, `ioctl(${what}, ${ifname})`);
      } catch (e) {
        if (e instanceof SysError && e.code === "EADDRNOTAVAIL") return null;
        throw e;
      }
      return ipFromBytes(r, 20);
    };
    const address = get(SIOC.GIFADDR, "SIOCGIFADDR");
    if (!address) return null;
    const mask = get(SIOC.GIFNETMASK, "SIOCGIFNETMASK") ?? "255.255.255.255";
    return { address, prefix: maskToPrefix(mask) ?? 32 };
  });
}

/**
 * Brings every candidate up and returns the first (in name order) that reports carrier within
 * `waitMs`; when none does, the first candidate (DHCP will then say what went wrong).
 */
export async function pickInterface(candidates: string[], waitMs = 5000, pollMs = 100): Promise<{ ifname: string; carrier: boolean }> {
  if (candidates.length === 0) throw new Error("no network interface found (is the NIC driver loaded?)");
  for (const n of candidates) {
    try {
      setUp(n);
    } catch {
      // one broken interface must not stop us trying the others
    }
  }
  const until = performance.now() + waitMs;
  for (;;) {
    const ready = candidates.find(readCarrier);
    if (ready) return { ifname: ready, carrier: true };
    if (performance.now() >= until) return { ifname: candidates[0]!, carrier: false };
    await Bun.sleep(pollMs);
  }
}

export async function waitCarrier(ifname: string, waitMs: number, pollMs = 100): Promise<boolean> {
  const until = performance.now() + waitMs;
  for (;;) {
    if (readCarrier(ifname)) return true;
    if (performance.now() >= until) return false;
    await Bun.sleep(pollMs);
  }
}

export interface IfaceInfo {
  name: string;
  flags: number;
  mac: string | null;
  mtu: number | null;
  operstate: string;
  carrier: boolean;
  address: string | null;
  prefix: number | null;
}

/** Read-only snapshot of one interface, for the rescue shell's `ip`. */
export function describeInterface(name: string): IfaceInfo {
  let flags = 0;
  let addr: { address: string; prefix: number } | null = null;
  try {
    flags = getFlags(name);
    addr = getAddress(name);
  } catch {
    // keep what /sys tells us
  }
  return { name, flags, mac: sysRead(name, "address"), mtu: readMtu(name), operstate: readOperstate(name), carrier: readCarrier(name), address: addr?.address ?? null, prefix: addr?.prefix ?? null };
}

/** `ip addr`-like lines for every interface (lo included). */
export function formatAddresses(infos: IfaceInfo[] = listInterfaces({ all: true }).map(describeInterface)): string[] {
  const lines: string[] = [];
  for (const i of infos) {
    const f: string[] = [];
    if (i.flags & IFF.LOOPBACK) f.push("LOOPBACK");
    if (i.flags & IFF.BROADCAST) f.push("BROADCAST");
    if (i.flags & IFF.UP) f.push("UP");
    if (i.carrier) f.push("LOWER_UP"); // ifr_flags is 16 bits: IFF_LOWER_UP only shows in sysfs
    lines.push(`${i.name}: <${f.join(",")}> mtu ${i.mtu ?? "?"} state ${i.operstate.toUpperCase()}`);
    if (i.mac && !/^(00:)*00$/.test(i.mac)) lines.push(`    link ${i.mac}`);
    if (i.address) lines.push(`    inet ${i.address}/${i.prefix ?? 32}`);
  }
  return lines;
}

export { formatIPv4 };
