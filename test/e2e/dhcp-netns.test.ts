// Our DHCP client and static ip= configuration on a real kernel: two network namespaces made by
// this test, joined by a veth pair; Debian's dnsmasq serves DHCP in one, our code (bun, from
// source) runs in the other. Results are read back with iproute2 and from dnsmasq's lease file,
// not from what our code printed. Namespaces are removed even when a test fails.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { scratch } from "../lib/tmp.ts";

const REPO = resolve(import.meta.dir, "../..");
const BUN = join(REPO, "node_modules/.bin/bun");
const tag = `${process.pid % 100000}`;
const SRV = `ibt-srv-${tag}`;
const CLI = `ibt-dhcp-${tag}`;
const CLI2 = `ibt-static-${tag}`;
const CLI3 = `ibt-handoff-${tag}`;
const tmp = scratch("inetboot-dhcp-e2e-");
let dnsmasq: ReturnType<typeof Bun.spawn> | undefined;

function sh(args: string[], okFail = false): string {
  const r = Bun.spawnSync(args, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0 && !okFail) throw new Error(`${args.join(" ")} → exit ${r.exitCode}: ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}
const ipIn = (ns: string, ...args: string[]) => sh(["ip", "-n", ns, ...args]);

function cleanup() {
  if (dnsmasq) {
    dnsmasq.kill();
    dnsmasq = undefined;
  }
  for (const ns of [SRV, CLI, CLI2, CLI3]) sh(["ip", "netns", "del", ns], true);
}

// The client side: our setupNetwork/dhcpOnce, run inside the client namespace.
const CLIENT = `
import { setupNetwork, dhcpOnce } from ${JSON.stringify(join(REPO, "src/net/setup.ts"))};
import { parseIpParam } from ${JSON.stringify(join(REPO, "src/net/ipconfig.ts"))};
import { showAddresses, showRoutes } from ${JSON.stringify(join(REPO, "src/net/show.ts"))};
const [mode, arg, root] = process.argv.slice(2);
if (mode === "show") {
  process.stdout.write(showAddresses() + showRoutes());
  process.exit(0);
}
const log = { info: (m) => console.error(m), warn: (m) => console.error("warn: " + m) };
const opts = { root, carrierWaitMs: 3000, dhcpTimeoutMs: 20000 };
const r = mode === "once" ? await dhcpOnce(arg, log, opts)
  : mode === "handoff" ? await setupNetwork({ ip: parseIpParam("dhcp"), nodhcp: false, handoff: JSON.parse(arg) }, log, opts)
  : await setupNetwork({ ip: parseIpParam(arg), nodhcp: false }, log, opts);
console.log(JSON.stringify(r));
`;

async function runClient(ns: string, mode: "setup" | "once" | "show" | "handoff", arg: string, root: string) {
  const p = Bun.spawn(["ip", "netns", "exec", ns, BUN, join(tmp, "client.ts"), mode, arg, root], { stdout: "pipe", stderr: "pipe", cwd: tmp });
  const timer = setTimeout(() => p.kill(), 40_000);
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  if (code !== 0) throw new Error(`client in ${ns} exited ${code}:\n${err}`);
  return { out, err };
}

function vethInto(ns: string, srvEnd: string) {
  sh(["ip", "netns", "add", ns]);
  ipIn(SRV, "link", "add", srvEnd, "type", "veth", "peer", "name", "vc", "netns", ns);
}

beforeAll(async () => {
  for (const tool of ["ip", "dnsmasq"]) {
    if (!Bun.which(tool) && !existsSync(`/usr/sbin/${tool}`)) throw new Error(`${tool} not installed (apt-get install iproute2 dnsmasq)`);
  }
  cleanup();
  writeFileSync(join(tmp, "client.ts"), CLIENT);
  sh(["ip", "netns", "add", SRV]);
  vethInto(CLI, "vs1");
  vethInto(CLI2, "vs2");
  // A bridge on the server side joins both veth ends, so the static client shares the subnet.
  ipIn(SRV, "link", "add", "br0", "type", "bridge");
  for (const l of ["vs1", "vs2"]) ipIn(SRV, "link", "set", l, "master", "br0", "up");
  ipIn(SRV, "addr", "add", "203.0.113.1/24", "dev", "br0");
  ipIn(SRV, "link", "set", "br0", "up");
  ipIn(SRV, "link", "set", "lo", "up");
  const dnsmasqBin = Bun.which("dnsmasq") ?? "/usr/sbin/dnsmasq";
  dnsmasq = Bun.spawn(
    [
      "ip", "netns", "exec", SRV, dnsmasqBin, "--keep-in-foreground", "--no-daemon", "--conf-file=/dev/null", "--port=0",
      "--interface=br0", "--bind-interfaces", "--user=root", "--no-ping", "--dhcp-authoritative",
      "--dhcp-range=203.0.113.50,203.0.113.60,255.255.255.0,1h",
      "--dhcp-option=option:router,203.0.113.1",
      "--dhcp-option=option:dns-server,203.0.113.53,203.0.113.54",
      "--dhcp-option=option:domain-name,example.test",
      "--dhcp-option=option:mtu,1400",
      // RFC 3442: a client must ignore option 3 when 121 is present, so the default route rides in 121 too
      "--dhcp-option=option:classless-static-route,198.51.100.0/24,203.0.113.254,0.0.0.0/0,203.0.113.1",
      `--dhcp-leasefile=${join(tmp, "leases")}`, `--pid-file=${join(tmp, "dnsmasq.pid")}`, "--log-dhcp",
    ],
    { stdout: "ignore", stderr: Bun.file(join(tmp, "dnsmasq.log")) },
  );
  // wait for the DHCP socket to be bound
  for (let i = 0; i < 50 && !/:67\b/.test(sh(["ip", "netns", "exec", SRV, "ss", "-uln"], true)); i++) await Bun.sleep(100);
}, 30_000);

afterAll(() => {
  cleanup();
  rmSync(tmp, { recursive: true, force: true });
});

/** What the DHCP test's setupNetwork returned: the handoff a kexec would carry to stage 2. */
let leased: { routes?: unknown[]; mtu: number } | undefined;

test("DHCP against dnsmasq: address, routes, MTU, resolv.conf", async () => {
  const root = join(tmp, "root-dhcp");
  mkdirSync(root);
  const first = await runClient(CLI, "setup", "dhcp", root); // no device named: interface choice must find vc
  leased = JSON.parse(first.out.trim().split("\n").pop()!);

  const addr = ipIn(CLI, "-4", "-o", "addr", "show", "dev", "vc");
  const m = /inet (203\.0\.113\.(\d+))\/24 brd 203\.0\.113\.255/.exec(addr);
  expect(m).not.toBeNull();
  const got = m![1]!;
  expect(Number(m![2])).toBeGreaterThanOrEqual(50);
  expect(Number(m![2])).toBeLessThanOrEqual(60);

  const routes = ipIn(CLI, "-4", "route", "show");
  expect(routes).toMatch(/^default via 203\.0\.113\.1 dev vc/m);
  expect(routes).toMatch(/^198\.51\.100\.0\/24 via 203\.0\.113\.254 dev vc/m);
  expect(routes).toMatch(/^203\.0\.113\.0\/24 dev vc .*src 203\.0\.113\.\d+/m);
  expect(ipIn(CLI, "link", "show", "dev", "vc")).toMatch(/\bmtu 1400\b/);
  expect(ipIn(CLI, "-4", "-o", "addr", "show", "dev", "lo")).toMatch(/inet 127\.0\.0\.1\/8/);

  // the server agrees: its lease file binds our interface's MAC to the same address
  const mac = sh(["ip", "netns", "exec", CLI, "cat", "/sys/class/net/vc/address"]).trim();
  const leases = readFileSync(join(tmp, "leases"), "utf8");
  expect(leases).toContain(`${mac} ${got} `);

  expect(readFileSync(join(root, "etc/resolv.conf"), "utf8")).toBe(
    "# written by inetboot\nsearch example.test\nnameserver 203.0.113.53\nnameserver 203.0.113.54\n",
  );
  expect(readFileSync(join(root, "etc/hosts"), "utf8")).toContain("127.0.0.1\tlocalhost");

  // the rescue shell's `dhcp` on an already configured interface: same lease, no duplicate routes
  await runClient(CLI, "once", "vc", root);
  expect(ipIn(CLI, "-4", "-o", "addr", "show", "dev", "vc").match(/inet /g)?.length).toBe(1);
  expect(ipIn(CLI, "-4", "-o", "addr", "show", "dev", "vc")).toContain(`inet ${got}/24`);
  expect(ipIn(CLI, "-4", "route", "show").match(/^default /gm)?.length).toBe(1);

  // the rescue shell's read-only `ip addr` / `ip route` see what iproute2 sees
  const { out } = await runClient(CLI, "show", "", root);
  expect(out).toContain(`vc: <BROADCAST,UP,LOWER_UP> mtu 1400 state UP\n    link ${mac}\n    inet ${got}/24\n`);
  expect(out).toContain("lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 state UNKNOWN\n    inet 127.0.0.1/8\n");
  expect(out).toContain("default via 203.0.113.1 dev vc\n");
  expect(out).toContain("198.51.100.0/24 via 203.0.113.254 dev vc\n");
  expect(out).toContain("203.0.113.0/24 dev vc scope link\n");
}, 60_000);

test("static ip=: address, default route, resolv.conf and hosts", async () => {
  const root = join(tmp, "root-static");
  mkdirSync(root);
  await runClient(CLI2, "setup", "203.0.113.9::203.0.113.1:255.255.255.0:statichost:vc:off:203.0.113.53", root);
  expect(ipIn(CLI2, "-4", "-o", "addr", "show", "dev", "vc")).toMatch(/inet 203\.0\.113\.9\/24 brd 203\.0\.113\.255/);
  const routes = ipIn(CLI2, "-4", "route", "show");
  expect(routes).toMatch(/^default via 203\.0\.113\.1 dev vc/m);
  expect(routes).toMatch(/^203\.0\.113\.0\/24 dev vc/m);
  expect(ipIn(CLI2, "link", "show", "dev", "vc")).toMatch(/state UP/);
  expect(readFileSync(join(root, "etc/resolv.conf"), "utf8")).toBe("# written by inetboot\nnameserver 203.0.113.53\n");
  expect(readFileSync(join(root, "etc/hosts"), "utf8")).toContain("203.0.113.9\tstatichost\n");
  // no DHCP happened for this MAC
  const mac = sh(["ip", "netns", "exec", CLI2, "cat", "/sys/class/net/vc/address"]).trim();
  expect(existsSync(join(tmp, "leases")) ? readFileSync(join(tmp, "leases"), "utf8") : "").not.toContain(mac);
}, 60_000);

test("kexec handoff: stage 2 puts stage 1's lease back without DHCP, classless routes and MTU included", async () => {
  expect(leased?.routes?.length).toBe(2);
  // An isolated namespace: vc's peer leads nowhere, so a DHCP attempt could only time out.
  sh(["ip", "netns", "add", CLI3]);
  ipIn(CLI3, "link", "add", "vc", "type", "veth", "peer", "name", "vp");
  ipIn(CLI3, "link", "set", "vp", "up");
  const root = join(tmp, "root-handoff");
  mkdirSync(root);
  const { out } = await runClient(CLI3, "handoff", JSON.stringify(leased), root);
  expect(JSON.parse(out.trim().split("\n").pop()!).via).toBe("handoff");
  const routes = ipIn(CLI3, "-4", "route", "show");
  expect(routes).toMatch(/^default via 203\.0\.113\.1 dev vc/m);
  expect(routes).toMatch(/^198\.51\.100\.0\/24 via 203\.0\.113\.254 dev vc/m);
  expect(ipIn(CLI3, "link", "show", "dev", "vc")).toMatch(/\bmtu 1400\b/);
  expect(readFileSync(join(root, "etc/resolv.conf"), "utf8")).toContain("search example.test\nnameserver 203.0.113.53\n");
}, 30_000);

test("ip= naming a missing device fails with one line", async () => {
  const err = await runClient(CLI2, "setup", ":::::eth7:dhcp", join(tmp, "root-static")).catch((e) => e as Error);
  expect(err).toBeInstanceOf(Error);
  expect((err as Error).message).toContain("ip=: device 'eth7' not found (have: vc)");
}, 30_000);
