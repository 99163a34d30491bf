// The kernel's `ip=` parameter (Documentation/admin-guide/nfs/nfsroot.rst):
//   ip=<client-ip>:<server-ip>:<gw-ip>:<netmask>:<hostname>:<device>:<autoconf>:<dns0-ip>:<dns1-ip>:<ntp0-ip>
// plus the short forms ip=dhcp|on|any|off|none (and dracut's ip=<device>:dhcp as a convenience).
// We speak DHCP only: bootp/both are served by DHCP, rarp is refused.
import { UserError } from "../sys/errors.ts";
import { classfulPrefix, isIPv4, maskToPrefix, prefixToMask } from "./addr.ts";

export interface IpDhcp {
  mode: "dhcp";
  device?: string;
  hostname?: string;
}
export interface IpStatic {
  mode: "static";
  address: string;
  /** from <netmask>, or classful when absent (as the kernel does) */
  prefix: number;
  gateway?: string;
  server?: string;
  hostname?: string;
  device?: string;
  dns: string[];
  ntp: string[];
}
export interface IpOff {
  mode: "off";
}
export type IpConfig = IpDhcp | IpStatic | IpOff;

export const DEFAULT_IP: IpConfig = { mode: "dhcp" };

const AUTOCONF_DHCP = new Set(["dhcp", "on", "any", "bootp", "both"]);
const AUTOCONF_OFF = new Set(["off", "none"]);

function bad(what: string, value: string): never {
  throw new UserError(`ip=: bad ${what} '${value}'`);
}

function ipField(what: string, v: string): string | undefined {
  if (v === "") return undefined;
  if (!isIPv4(v)) bad(what, v);
  return v;
}

const DEVICE_RE = /^[^\s/:]{1,15}$/;
const HOST_RE = /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/;

/** Parses the value of `ip=` (without the `ip=`); throws UserError with one line on bad input. */
export function parseIpParam(value: string): IpConfig {
  const v = value.trim();
  if (v === "") throw new UserError("ip=: empty value (use ip=dhcp, ip=off or the static form)");
  const lower = v.toLowerCase();
  if (!v.includes(":")) {
    if (AUTOCONF_DHCP.has(lower)) return { mode: "dhcp" };
    if (AUTOCONF_OFF.has(lower)) return { mode: "off" };
    if (lower === "rarp") throw new UserError("ip=: autoconf 'rarp' is not supported (use dhcp or a static address)");
    if (isIPv4(v)) return { mode: "static", address: v, prefix: classfulPrefix(v), dns: [], ntp: [] };
    bad("value", v);
  }
  const f = v.split(":");
  // dracut's ip=<device>:<autoconf>
  if (f.length === 2 && !isIPv4(f[0]!) && f[0] !== "" && (AUTOCONF_DHCP.has(f[1]!.toLowerCase()) || AUTOCONF_OFF.has(f[1]!.toLowerCase()))) {
    if (!DEVICE_RE.test(f[0]!)) bad("device", f[0]!);
    return AUTOCONF_DHCP.has(f[1]!.toLowerCase()) ? { mode: "dhcp", device: f[0]! } : { mode: "off" };
  }
  if (f.length > 10) throw new UserError(`ip=: too many fields (${f.length}, at most 10)`);
  const [client = "", server = "", gw = "", mask = "", host = "", dev = "", auto = "", dns0 = "", dns1 = "", ntp0 = ""] = f;

  const address = ipField("client address", client);
  const serverIp = ipField("server address", server);
  const gateway = ipField("gateway", gw);
  let prefix: number | undefined;
  if (mask !== "") {
    if (!isIPv4(mask)) bad("netmask", mask);
    const p = maskToPrefix(mask);
    if (p === null) bad("netmask", mask);
    prefix = p;
  }
  if (host !== "" && (host.length > 64 || !HOST_RE.test(host))) bad("hostname", host);
  if (dev !== "" && !DEVICE_RE.test(dev)) bad("device", dev);
  const dns = [ipField("dns0 address", dns0), ipField("dns1 address", dns1)].filter((x): x is string => !!x);
  const ntp = [ipField("ntp0 address", ntp0)].filter((x): x is string => !!x);

  const a = auto.toLowerCase();
  if (a === "rarp") throw new UserError("ip=: autoconf 'rarp' is not supported (use dhcp or off)");
  if (a !== "" && !AUTOCONF_DHCP.has(a) && !AUTOCONF_OFF.has(a)) bad("autoconf", auto);

  // As the kernel: a given client address means static configuration whatever <autoconf> says.
  if (address) {
    const s: IpStatic = { mode: "static", address, prefix: prefix ?? classfulPrefix(address), dns, ntp };
    if (gateway) s.gateway = gateway;
    if (serverIp) s.server = serverIp;
    if (host) s.hostname = host;
    if (dev) s.device = dev;
    return s;
  }
  if (AUTOCONF_OFF.has(a)) return { mode: "off" };
  const d: IpDhcp = { mode: "dhcp" };
  if (dev) d.device = dev;
  if (host) d.hostname = host;
  return d;
}

/** Back to kernel syntax (for logs and for passing on to a kexec'd kernel). */
export function formatIpParam(c: IpConfig): string {
  if (c.mode === "off") return "off";
  if (c.mode === "dhcp") return c.device || c.hostname ? `::::${c.hostname ?? ""}:${c.device ?? ""}:dhcp` : "dhcp";
  const mask = prefixToMask(c.prefix);
  const f = [c.address, c.server ?? "", c.gateway ?? "", mask, c.hostname ?? "", c.device ?? "", "off", c.dns[0] ?? "", c.dns[1] ?? "", c.ntp[0] ?? ""];
  while (f.length > 7 && f[f.length - 1] === "") f.pop();
  return f.join(":");
}
