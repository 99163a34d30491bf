// One executable, two roles: as PID 1 (or when asked) the boot agent, otherwise the host CLI.
const argv0 = process.argv0 ?? "";
// HTTP(S)_PROXY and NO_PROXY (from the shell, or a boot's kernel command line): one module decides
// what is proxied, not Bun's fetch by itself (src/fetch/proxy.ts says why).
const { takeProxyEnv } = await import("./fetch/proxy.ts");
takeProxyEnv();
// PID 1 is always the agent: the kernel hands a `NAME=value` word of its command line to init as an
// environment variable, and INETBOOT_ROLE=nbd-daemon there must not make PID 1 exit (a panic).
if (process.pid !== 1 && process.env.INETBOOT_ROLE === "nbd-daemon") {
  const { runNbdDaemon } = await import("./nbd/daemon.ts");
  await runNbdDaemon(JSON.parse(process.env.INETBOOT_NBD ?? "{}"));
} else if (process.pid === 1 || process.env.INETBOOT_AGENT === "1") {
  // A serial console logs plain text: no ANSI colours in the boot log.
  process.env.NO_COLOR = "1";
  const { runAgent } = await import("./agent/main.ts");
  await runAgent();
} else {
  // Usage pages and messages piped to a file or a pager: no ANSI colours (citty reads NO_COLOR once, on load).
  if (!process.stdout.isTTY && process.env.FORCE_COLOR === undefined) process.env.NO_COLOR ||= "1";
  const { runCli } = await import("./cli/main.ts");
  await runCli(argv0);
}

export {};
