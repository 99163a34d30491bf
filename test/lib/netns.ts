// A network namespace the test creates (and always deletes): a tap device for QEMU, dnsmasq as the
// DHCP server and a static HTTP server, all inside it. No traffic leaves the namespace.
import { writeFileSync, readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { ROOT } from "./qemu.ts";
import { scratch } from "./tmp.ts";

function sh(cmd: string[]) {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}

export interface TapNet {
  ns: string;
  tap: string;
  hostIp: string;
  dir: string;
  exec: string[];
  leases: string;
  procs: Subprocess[];
  stop(): Promise<void>;
}

/** `dns` makes dnsmasq also the namespace's DNS server, answering those names (and no others:
 *  nothing is forwarded out). */
export async function createTapNet(opts: { subnet?: string; mac: string; fixedIp: string; hostname: string; dns?: Record<string, string> }): Promise<TapNet> {
  const subnet = opts.subnet ?? "10.99.0";
  const ns = `ibtest${process.pid % 100000}${Math.floor(Math.random() * 1000)}`;
  const tap = "ibtap0";
  const hostIp = `${subnet}.1`;
  const dir = scratch("inetboot-netns-");
  const exec = ["ip", "netns", "exec", ns];
  sh(["ip", "netns", "add", ns]);
  const procs: Subprocess[] = [];
  const net: TapNet = {
    ns, tap, hostIp, dir, exec, procs, leases: join(dir, "dnsmasq.leases"),
    async stop() {
      for (const p of procs) p.kill(9);
      await Promise.all(procs.map((p) => p.exited));
      Bun.spawnSync(["ip", "netns", "del", ns]);
    },
  };
  try {
    sh([...exec, "ip", "link", "set", "lo", "up"]);
    sh([...exec, "ip", "tuntap", "add", "dev", tap, "mode", "tap"]);
    sh([...exec, "ip", "addr", "add", `${hostIp}/24`, "dev", tap]);
    sh([...exec, "ip", "link", "set", tap, "up"]);
    const dnsmasq = Bun.spawn(
      [
        ...exec, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", `--interface=${tap}`, "--bind-interfaces",
        // (authoritative for the names' domains: another name there is NXDOMAIN, not "no upstream")
        ...(opts.dns
          ? ["--no-resolv", "--no-hosts", ...Object.entries(opts.dns).flatMap(([name, ip]) => [`--address=/${name}/${ip}`, `--local=/${name.replace(/^[^.]*\./, "")}/`])]
          : ["--port=0"]),
        `--dhcp-range=${subnet}.50,${subnet}.60,255.255.255.0,1h`, `--dhcp-option=option:router,${hostIp}`,
        `--dhcp-option=option:dns-server,${hostIp}`, "--dhcp-option=option:domain-name,inetboot.test",
        `--dhcp-host=${opts.mac},${opts.fixedIp},${opts.hostname}`, `--dhcp-leasefile=${net.leases}`, "--log-dhcp",
        `--pid-file=${join(dir, "dnsmasq.pid")}`,
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    procs.push(dnsmasq);
    return net;
  } catch (e) {
    await net.stop();
    throw e;
  }
}

/** Starts a static HTTP server inside the namespace on hostIp:port serving dir. */
export async function serveInNetns(net: TapNet, dir: string, port = 8080) {
  const p = Bun.spawn([...net.exec, process.execPath, join(ROOT, "test/lib/static-server.ts"), dir, net.hostIp, String(port)], {
    stdout: "pipe",
    stderr: "inherit",
  });
  net.procs.push(p);
  const reader = p.stdout.getReader();
  const { value } = await reader.read();
  if (!value || !new TextDecoder().decode(value).includes("ready")) throw new Error("static server in netns did not start");
  return `http://${net.hostIp}:${port}`;
}

export function leasesText(net: TapNet) {
  return existsSync(net.leases) ? readFileSync(net.leases, "utf8") : "";
}
void writeFileSync;
