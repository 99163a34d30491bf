// What both boot benches share: the demo root and its store, a boot timed to the demo's marker,
// the machine's load, and a plain-text table.
import { existsSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { buildDemoRoot, packDemoStore, DEMO_MARKER, DEMO_STORE, type DemoRoot } from "../../test/lib/demo-root.ts";
import { BUILD, type Guest } from "../../test/lib/qemu.ts";
import { atExit } from "../../test/lib/cleanup.ts";

export const INETBOOT = join(BUILD, "inetboot");
export const STORE = DEMO_STORE;
export const say = (s: string) => process.stderr.write(`bench: ${s}\n`);
export const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
export const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
export const load = () => loadavg().map((x) => x.toFixed(2)).join(" ");

/** The demo squashfs (built or cached) packed into build/demo/store/ (the same stamp test/demo.ts uses). */
export function demoStore(): DemoRoot {
  for (const p of [INETBOOT, join(BUILD, "initramfs.cpio.zst")]) if (!existsSync(p)) throw new Error(`${p} missing: run 'make all'`);
  const root = buildDemoRoot({ log: say });
  packDemoStore(root, INETBOOT, say);
  return root;
}

export interface MarkerTime {
  /** ms from QEMU start to the marker on the console */
  ms: number;
  /** guest kernel uptime printed in the marker (s): excludes firmware and boot loader time */
  uptime: number;
}

/**
 * Waits for the demo's marker, then runs `after` (if any: it may use the guest's shell); always
 * kills QEMU afterwards. `t0` is when QEMU was started.
 */
export async function markerTime(g: Guest, t0: number, timeoutMs = 300_000, after?: (g: Guest) => Promise<void>): Promise<MarkerTime> {
  const forget = atExit(() => g.kill());
  try {
    const m = await g.waitText(new RegExp(`${DEMO_MARKER}.*uptime=([\\d.]+)\\s`), timeoutMs);
    const ms = Date.now() - t0;
    await after?.(g);
    return { ms, uptime: Number(m[1]) };
  } catch (e) {
    const msg = (e as Error).message;
    throw new Error(msg.slice(0, msg.indexOf("\n") >= 0 ? msg.indexOf("\n") : undefined) + `\n--- console tail ---\n${g.tail(3000)}`);
  } finally {
    g.kill();
    await g.exited;
    forget();
  }
}

/** A Markdown table (the figures go to bench/README.md as they are printed). */
export function table(head: string[], rows: (string | number)[][], right = head.map((_, i) => i > 0)): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(" | ")} |`;
  return [line(head), line(head.map((_, i) => (right[i] ? "---:" : "---"))), ...rows.map(line)].join("\n");
}

export const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : "—");

/** Kernel uptime (s) at an agent or daemon event: their `t` runs on the agent's clock, and
 *  agent.start says what the kernel's uptime was when that clock started. */
export function eventUptime(g: Guest, name: string): number | undefined {
  const start = g.event("agent.start");
  const e = g.event(name);
  if (!start || typeof start.uptime !== "number" || !e) return undefined;
  return start.uptime - start.t + e.t;
}

/**
 * Where the guest's time went, from its console: kernel start → /init (kernel log timestamp), →
 * the agent's switch_root (its events carry the kernel uptime at agent start), → the marker.
 */
export function timeline(g: Guest, t: MarkerTime): string {
  const init = g.output.match(/\[\s*([\d.]+)\] Run \/init as init process/);
  const agentUp = eventUptime(g, "agent.start");
  const swUp = eventUptime(g, "switch_root");
  const parts: string[] = [];
  if (init) parts.push(`/init ${Number(init[1]).toFixed(1)}`);
  if (agentUp !== undefined) parts.push(`agent ${agentUp.toFixed(1)}`);
  if (swUp !== undefined) parts.push(`switch_root ${swUp.toFixed(1)}`);
  const ram = g.output.match(/RAM-INIT-FETCHED bytes=\d+ uptime=([\d.]+)/);
  if (ram) parts.push(`fetched ${Number(ram[1]).toFixed(1)}`);
  parts.push(`marker ${t.uptime.toFixed(1)}`);
  return parts.join(" → ") + " s";
}

/**
 * Bytes the booted system had read from a block device, from its /sys/block/DEV/stat (sectors
 * read × 512), asked in the autologin shell on ttyS0 right after the marker: what a lazy fetcher
 * must at least fetch (the login itself adds a little). Undefined when the shell did not answer.
 */
export async function deviceReadBytes(g: Guest, dev: string): Promise<number | undefined> {
  try {
    await g.waitText(/root@inetboot-demo:~# /, 60_000);
    const from = g.output.length;
    g.send(`echo DEVSTAT $(cat /sys/block/${dev}/stat) END`);
    const m = await g.waitText(/DEVSTAT\s+\d+\s+\d+\s+(\d+)[\d\s]*END/, 30_000, from);
    return Number(m[1]) * 512;
  } catch {
    return undefined;
  }
}
