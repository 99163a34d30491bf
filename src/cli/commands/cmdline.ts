// `inetboot cmdline "..."`: shows the boot plan the agent would build from a kernel command line,
// so a GRUB entry can be checked on the host before booting it.
import { defineCommand } from "citty";
import { guarded } from "../fail.ts";
import { parsePlan } from "../../boot/cmdline.ts";

export default defineCommand({
  meta: { name: "cmdline", description: "Parse a kernel command line into the agent's boot plan (JSON on stdout)" },
  args: {
    line: { type: "positional", description: "the kernel command line (default: /proc/cmdline)", required: false },
  },
  run: guarded(async (args: { line?: string }) => {
    const text = args.line ?? (await Bun.file("/proc/cmdline").text());
    const plan = parsePlan(text);
    process.stdout.write(JSON.stringify(plan, null, 2) + "\n");
    for (const w of plan.warnings) process.stderr.write(`warning: ${w}\n`);
  }),
});
