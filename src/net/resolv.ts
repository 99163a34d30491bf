// /etc/resolv.conf and /etc/hosts for the booted-into userspace and for our own name lookups.
// Everything takes a root directory so tests write into a temp dir.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** A DNS name as the server sent it (DHCP options 12 and 15: any bytes), or undefined when it is
 *  not one: a newline in it would add lines of the server's choosing to these files. */
export function dnsName(s: string | undefined): string | undefined {
  return s !== undefined && /^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$/.test(s) && s.length <= 253 ? s : undefined;
}

export function resolvConfText(dns: string[], domain?: string): string {
  const lines = ["# written by inetboot"];
  domain = dnsName(domain);
  if (domain) lines.push(`search ${domain}`);
  for (const ns of dns.slice(0, 3)) lines.push(`nameserver ${ns}`); // glibc reads at most 3 (MAXNS)
  return lines.join("\n") + "\n";
}

export function hostsText(hostname?: string, address?: string, domain?: string): string {
  const lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"];
  hostname = dnsName(hostname);
  domain = dnsName(domain);
  if (hostname) {
    const names = domain && !hostname.includes(".") ? `${hostname}.${domain} ${hostname}` : hostname;
    lines.push(`${address ?? "127.0.1.1"}\t${names}`);
  }
  return lines.join("\n") + "\n";
}

export function writeResolvConf(root: string, dns: string[], domain?: string): string {
  const path = join(root, "etc/resolv.conf");
  mkdirSync(join(root, "etc"), { recursive: true });
  writeFileSync(path, resolvConfText(dns, domain));
  return path;
}

export function writeHosts(root: string, hostname?: string, address?: string, domain?: string): string {
  const path = join(root, "etc/hosts");
  mkdirSync(join(root, "etc"), { recursive: true });
  writeFileSync(path, hostsText(hostname, address, domain));
  return path;
}
