// A network namespace reached from the host through a veth pair whose two ends are shaped with tbf
// (token bucket: bandwidth only; this kernel has no sch_netem, so delay comes from test/lib/delay-proxy.ts).
// Servers run inside with `exec`; the host reaches them at `nsIp`. The namespace (and with it the
// veth pair) is deleted by stop(), on SIGINT/SIGTERM and at process exit, whatever happened.
import type { Subprocess } from "bun";
import { atExit } from "./cleanup.ts";

function sh(cmd: string[]): string {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.toString().trim() || `exit ${r.exitCode}`}`);
  return r.stdout.toString();
}

export interface ShapedNetns {
  ns: string;
  /** address of the host end of the veth */
  hostIp: string;
  /** address of the namespace end: servers inside listen here */
  nsIp: string;
  /** argv prefix that runs a command inside the namespace */
  exec: string[];
  /** `tc qdisc show` of both ends, to print with the figures */
  qdiscs(): string;
  /** processes started in the namespace; stop() kills them */
  procs: Subprocess[];
  stop(): Promise<void>;
}

export interface ShapeOptions {
  /** rate in Mbit/s, applied to both directions */
  rateMbit: number;
  /** tbf bucket in bytes (default 64 KiB: above rate/HZ, small against a 256 KiB chunk) */
  burstBytes?: number;
}

/** Kills what still runs inside the namespace (by pid), then deletes it with its veth pair. */
function deleteNs(ns: string) {
  const pids = Bun.spawnSync(["ip", "netns", "pids", ns], { stdout: "pipe", stderr: "ignore" }).stdout.toString();
  for (const pid of pids.split(/\s+/).filter(Boolean).map(Number))
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  Bun.spawnSync(["ip", "netns", "del", ns], { stdout: "ignore", stderr: "ignore" });
}

export function createShapedNetns(o: ShapeOptions): ShapedNetns {
  const id = `${process.pid % 10000}${Math.floor(Math.random() * 100)}`;
  const ns = `ibshape${id}`;
  const vh = `ibsh${id}`; // ≤ 15 characters
  const vn = `ibsn${id}`;
  const sub = `10.213.${process.pid % 250}`;
  const hostIp = `${sub}.1`;
  const nsIp = `${sub}.2`;
  const exec = ["ip", "netns", "exec", ns];
  const burst = o.burstBytes ?? 65536;
  // latency bounds the tbf queue: 100 ms of data at this rate, as a router's buffer would.
  const tbf = ["tbf", "rate", `${o.rateMbit}mbit`, "burst", String(burst), "latency", "100ms"];
  sh(["ip", "netns", "add", ns]);
  const forget = atExit(() => deleteNs(ns));
  const procs: Subprocess[] = [];
  const net: ShapedNetns = {
    ns, hostIp, nsIp, exec, procs,
    qdiscs: () => [sh(["tc", "qdisc", "show", "dev", vh]), sh([...exec, "tc", "qdisc", "show", "dev", vn])].join("").trim(),
    async stop() {
      for (const p of procs) p.kill(9);
      await Promise.all(procs.map((p) => p.exited));
      deleteNs(ns);
      forget();
    },
  };
  try {
    sh(["ip", "link", "add", vh, "type", "veth", "peer", "name", vn]);
    sh(["ip", "link", "set", vn, "netns", ns]);
    sh(["ip", "addr", "add", `${hostIp}/30`, "dev", vh]);
    sh(["ip", "link", "set", vh, "up"]);
    sh([...exec, "ip", "link", "set", "lo", "up"]);
    sh([...exec, "ip", "addr", "add", `${nsIp}/30`, "dev", vn]);
    sh([...exec, "ip", "link", "set", vn, "up"]);
    // veth hands 64 KiB GSO super-packets to the qdisc; tbf splits those larger than its bucket.
    sh(["tc", "qdisc", "add", "dev", vh, "root", ...tbf]);
    sh([...exec, "tc", "qdisc", "add", "dev", vn, "root", ...tbf]);
  } catch (e) {
    deleteNs(ns);
    forget();
    try {
      sh(["ip", "link", "del", vh]);
    } catch {
      /* went with the namespace */
    }
    throw e;
  }
  return net;
}
