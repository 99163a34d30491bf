// `inetboot cmdline "..."`: shows the boot plan the agent would build from a kernel command line,
// so a GRUB entry can be checked on the host before booting it.
import { defineCommand } from "citty";
import { guarded } from "../fail.ts";
import { restPositional } from "../options.ts";
import { parsePlan } from "../../boot/cmdline.ts";
import { redactUrls } from "../../fetch/errors.ts";

export default defineCommand({
  meta: { name: "cmdline", description: "Parse a kernel command line into the agent's boot plan (JSON on stdout)" },
  args: {
    // several words are one line joined by spaces: `inetboot cmdline ip=dhcp inetboot.root=URL`
    line: restPositional({ type: "positional", description: "the kernel command line, quoted or as several words (default: /proc/cmdline)", required: false } as const),
  },
  run: guarded(async (args: { _: string[] }) => {
    const text = args._.length ? args._.join(" ") : await Bun.file("/proc/cmdline").text();
    const plan = parsePlan(text);
    // no password of a URL in what is shown, as the agent's own echo of the line (README)
    process.stdout.write(redactUrls(JSON.stringify(plan, null, 2)) + "\n");
    for (const w of plan.warnings) process.stderr.write(`warning: ${redactUrls(w)}\n`);
  }),
});
