// A network namespace reached from the host through a veth pair: servers run inside with `exec`,
// the host reaches them at `nsIp`. The namespace (and with it the veth pair) is deleted by stop(),
// on SIGINT/SIGTERM and at process exit, whatever happened. No traffic leaves it.
import type { Subprocess } from "bun";
import { atExit } from "./cleanup.ts";

export function sh(cmd: string[]): string {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr.toString().trim() || `exit ${r.exitCode}`}`);
  return r.stdout.toString();
}

export interface VethNetns {
  ns: string;
  /** the two ends of the veth pair: on the host, in the namespace (≤ 15 characters each) */
  hostDev: string;
  nsDev: string;
  /** address of the host end of the veth */
  hostIp: string;
  /** address of the namespace end: servers inside listen here */
  nsIp: string;
  /** argv prefix that runs a command inside the namespace */
  exec: string[];
  /** processes started in the namespace; stop() kills them */
  procs: Subprocess[];
  stop(): Promise<void>;
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

/** A new namespace `${prefix}N` on 10.`second`.P.0/30 (P from the pid: parallel runs differ);
 *  `setup` adds to it before it is returned (and it is deleted if that throws). */
export function createVethNetns(prefix: string, second: number, setup?: (n: VethNetns) => void): VethNetns {
  const id = `${process.pid % 10000}${Math.floor(Math.random() * 100)}`;
  const ns = `${prefix}${id}`;
  const hostDev = `${prefix.slice(0, 4)}h${id}`;
  const nsDev = `${prefix.slice(0, 4)}n${id}`;
  const sub = `10.${second}.${process.pid % 250}`;
  const exec = ["ip", "netns", "exec", ns];
  sh(["ip", "netns", "add", ns]);
  const forget = atExit(() => deleteNs(ns));
  const procs: Subprocess[] = [];
  const net: VethNetns = {
    ns, hostDev, nsDev, hostIp: `${sub}.1`, nsIp: `${sub}.2`, exec, procs,
    async stop() {
      for (const p of procs) p.kill(9);
      await Promise.all(procs.map((p) => p.exited));
      deleteNs(ns);
      forget();
    },
  };
  try {
    sh(["ip", "link", "add", hostDev, "type", "veth", "peer", "name", nsDev]);
    sh(["ip", "link", "set", nsDev, "netns", ns]);
    sh(["ip", "addr", "add", `${net.hostIp}/30`, "dev", hostDev]);
    sh(["ip", "link", "set", hostDev, "up"]);
    sh([...exec, "ip", "link", "set", "lo", "up"]);
    sh([...exec, "ip", "addr", "add", `${net.nsIp}/30`, "dev", nsDev]);
    sh([...exec, "ip", "link", "set", nsDev, "up"]);
    setup?.(net);
  } catch (e) {
    deleteNs(ns);
    forget();
    try {
      sh(["ip", "link", "del", hostDev]);
    } catch {
      /* went with the namespace */
    }
    throw e;
  }
  return net;
}
