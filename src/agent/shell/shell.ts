// The rescue shell (the seed's "BuildRoot Shell"): a line-oriented command loop on the console.
// Nothing typed here may take the agent down: every command runs inside a try/catch.
import { createInterface } from "node:readline";
import { emit } from "../events.ts";
import { oneLine } from "../../sys/errors.ts";
import { COMMANDS, type ShellContext } from "./commands.ts";

export const PROMPT = "inetboot# ";

/** Splits a command line into words; "double" and 'single' quotes group. */
export function splitWords(line: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line))) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}

export async function runLine(line: string, ctx: ShellContext): Promise<void> {
  const words = splitWords(line);
  if (words.length === 0) return;
  const [name, ...args] = words as [string, ...string[]];
  const cmd = COMMANDS[name];
  if (!cmd) {
    ctx.out(`${name}: unknown command (type 'help')\n`);
    return;
  }
  try {
    await cmd.run(args, ctx);
  } catch (e) {
    ctx.out(`${name}: ${oneLine(e)}\n`);
  }
}

/** Runs the shell on stdin/stdout until input ends; resolves then (PID 1 keeps waiting). */
export async function rescueShell(reason?: string): Promise<void> {
  const out = (s: string) => void process.stdout.write(s);
  if (reason) out(`\n*** ${reason}\n`);
  out("Rescue shell: type 'help' for commands.\n");
  const rl = createInterface({ input: process.stdin, terminal: false });
  const ctx: ShellContext = {
    out,
    pause: () => rl.pause(),
    resume: () => rl.resume(),
  };
  emit("shell.ready", reason ? { reason } : {});
  out(PROMPT);
  for await (const line of rl) {
    await runLine(line, ctx);
    out(PROMPT);
  }
}
