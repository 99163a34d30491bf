// What every failed boot must end in: the error named, the rescue shell, and a clean power-off.
import { expect } from "bun:test";
import type { Guest } from "./qemu.ts";

/** The agent reported an `error` event matching `why`, offered the rescue shell, the shell runs
 *  `command` (its output containing `says`), and `poweroff` ends the VM with exit 0: no kernel
 *  panic on the way. */
export async function expectRescueShell(g: Guest, why: RegExp, o: { command?: string; says?: string; timeoutMs?: number } = {}): Promise<void> {
  const err = await g.waitEvent("error", o.timeoutMs ?? 150_000);
  expect(String(err.message)).toMatch(why);
  await g.waitEvent("shell.ready");
  await g.waitText(/inetboot# $/m);
  expect(await g.shell(o.command ?? "sh -c 'echo alive'")).toContain(o.says ?? "alive");
  expect(g.output).not.toMatch(/Kernel panic/);
  g.send("poweroff");
  expect(await g.exited).toBe(0);
}
