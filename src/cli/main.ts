// The host CLI: one command per file under ./commands, loaded lazily so `--help` stays fast.
import { defineCommand, runCommand, runMain, showUsage, type CommandDef } from "citty";
import pkg from "../../package.json" with { type: "json" };
import { fail, quietOnBrokenPipe } from "./fail.ts";
import { extraArgument, unknownOption, type OptionDef } from "./options.ts";

const main = defineCommand({
  meta: { name: "inetboot", version: pkg.version, description: "Boot machines over the Internet with nothing but HTTP(S)" },
  subCommands: {
    initramfs: () => import("./commands/initramfs.ts").then((m) => m.default),
    fetch: () => import("./commands/fetch.ts").then((m) => m.default),
    cmdline: () => import("./commands/cmdline.ts").then((m) => m.default),
    pack: () => import("./commands/pack.ts").then((m) => m.default),
    verify: () => import("./commands/verify.ts").then((m) => m.default),
    info: () => import("./commands/info.ts").then((m) => m.default),
    nbd: () => import("./commands/nbd.ts").then((m) => m.default),
    serve: () => import("./commands/serve.ts").then((m) => m.default),
    iso: () => import("./commands/iso.ts").then((m) => m.default),
    usb: () => import("./commands/usb.ts").then((m) => m.default),
    cache: () => import("./commands/cache.ts").then((m) => m.default),
    keygen: () => import("./commands/keygen.ts").then((m) => m.default),
    sign: () => import("./commands/sign.ts").then((m) => m.default),
    manifest: () => import("./commands/manifest.ts").then((m) => m.default),
    profile: () => import("./commands/profile.ts").then((m) => m.default),
  },
});

export async function runCli(_argv0: string) {
  quietOnBrokenPipe();
  const rawArgs = process.argv.slice(2);
  const help = rawArgs.some((a) => a === "--help" || a === "-h");
  const version = rawArgs.length === 1 && (rawArgs[0] === "--version" || rawArgs[0] === "-v");
  const leaf = await resolveCommand(rawArgs);
  if (help) {
    // citty names only one parent ("cache verify"): give it the whole path ("inetboot cache verify").
    const parents = `inetboot ${leaf.path}`.trim().split(" ").slice(0, -1).join(" ");
    await showUsage(leaf.cmd, leaf.depth ? ({ meta: { name: parents, version: pkg.version } } as CommandDef) : undefined);
    process.exit(0);
  }
  // --version and a bare `inetboot` (the usage page, exit 1) as citty does them.
  if (version || rawArgs.length === 0) return runMain(main, { rawArgs });
  // A mistyped command, option or a missing argument: one line naming it and where help is, not
  // the whole usage page (commands' own errors are already one line, see fail.ts).
  const usageError = (what: string, path: string): never => {
    process.stderr.write(`inetboot: ${what} (see 'inetboot ${path}--help')\n`);
    process.exit(2);
  };
  if (!leaf.cmd.subCommands) {
    const args = (typeof leaf.cmd.args === "function" ? await leaf.cmd.args() : await leaf.cmd.args) as Record<string, OptionDef> | undefined;
    const bad = unknownOption(args ?? {}, rawArgs.slice(leaf.depth));
    if (bad) usageError(`unknown option ${bad}`, leaf.path);
    // citty drops surplus words: `pack IMG STORE extra` would pack and say nothing of "extra"
    const extra = extraArgument(args ?? {}, rawArgs.slice(leaf.depth));
    if (extra !== null) usageError(`unexpected argument ${/^[^\s"'\\]+$/.test(extra) ? extra : JSON.stringify(extra)}`, leaf.path);
  }
  try {
    await runCommand(main, { rawArgs });
  } catch (e) {
    if ((e as Error).name !== "CLIError") fail(e);
    const msg = (e as Error).message.replace(/\x1b\[[0-9;]*m/g, "").replace(/\.$/, "");
    usageError(msg.charAt(0).toLowerCase() + msg.slice(1), leaf.path);
  }
}

/** The command the arguments name ("cache verify …" → cache's verify), its path for the help
 *  hint ("cache verify "), and how many arguments named it. */
async function resolveCommand(rawArgs: string[]): Promise<{ cmd: CommandDef; path: string; depth: number }> {
  let cmd: CommandDef = main as CommandDef;
  let path = "";
  let depth = 0;
  for (const a of rawArgs) {
    const subs = (typeof cmd.subCommands === "function" ? await cmd.subCommands() : await cmd.subCommands) as Record<string, unknown> | undefined;
    const sub = subs?.[a];
    if (!sub) break;
    cmd = (await (typeof sub === "function" ? (sub as () => unknown)() : sub)) as CommandDef;
    path += `${a} `;
    depth++;
  }
  return { cmd, path, depth };
}
