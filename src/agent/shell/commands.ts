// The rescue shell's command table. Each command gets its words and the console; errors thrown
// here are printed as one line by the shell loop.
import { existsSync, readFileSync, readdirSync, statSync, lstatSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { mount, umount, reboot, REBOOT, readKernelLog } from "../../sys/ffi.ts";
import { UserError } from "../../sys/errors.ts";
import { proxyEnvVars } from "../../fetch/proxy.ts";
import { trackChild, untrackChild } from "../pid1.ts";

export interface ShellContext {
  out: (s: string) => void;
  /** Stop reading lines (while a child such as busybox sh owns the console). */
  pause: () => void;
  resume: () => void;
}

export interface Command {
  usage: string;
  help: string;
  run: (args: string[], ctx: ShellContext) => Promise<void> | void;
}

function need(args: string[], n: number, usage: string) {
  if (args.length < n) throw new UserError(`usage: ${usage}`);
}

function modeString(mode: number, isLink: boolean): string {
  const t = isLink ? "l" : (mode & 0o170000) === 0o40000 ? "d" : (mode & 0o170000) === 0o20000 ? "c" : (mode & 0o170000) === 0o60000 ? "b" : "-";
  const rwx = "rwxrwxrwx";
  let s = t;
  for (let i = 0; i < 9; i++) s += mode & (1 << (8 - i)) ? rwx[i] : "-";
  return s;
}

export const COMMANDS: Record<string, Command> = {
  help: {
    usage: "help",
    help: "list commands",
    run: (_a, { out }) => {
      for (const c of Object.values(COMMANDS)) out(`  ${c.usage.padEnd(36)} ${c.help}\n`);
    },
  },
  ls: {
    usage: "ls [DIR|FILE]...",
    help: "list files",
    run: (args, { out }) => {
      for (const p of args.length ? args : ["."]) {
        const st = lstatSync(p);
        const names = st.isDirectory() ? readdirSync(p).sort() : [p];
        for (const n of names) {
          const full = st.isDirectory() ? join(p, n) : n;
          const s = lstatSync(full);
          const link = s.isSymbolicLink() ? ` -> ${readlinkSync(full)}` : "";
          out(`${modeString(s.mode, s.isSymbolicLink())} ${String(s.size).padStart(10)} ${n}${link}\n`);
        }
      }
    },
  },
  cat: {
    usage: "cat FILE...",
    help: "print files",
    run: (args, { out }) => {
      need(args, 1, "cat FILE...");
      for (const f of args) out(readFileSync(f, "utf8"));
    },
  },
  dmesg: {
    usage: "dmesg",
    help: "kernel log",
    run: (_a, { out }) => out(readKernelLog()),
  },
  ip: {
    usage: "ip [addr|route]",
    help: "addresses and routes",
    run: async (args, { out }) => {
      const net = await import("../../net/show.ts");
      const what = args[0] ?? "addr";
      if (what.startsWith("a")) out(net.showAddresses());
      else if (what.startsWith("r")) out(net.showRoutes());
      else throw new UserError(`ip ${what}: expected 'addr' or 'route'`);
    },
  },
  dhcp: {
    usage: "dhcp [IFACE]",
    help: "run DHCP again",
    run: async (args, { out }) => {
      const { dhcpOnce } = await import("../../net/setup.ts");
      const r = await dhcpOnce(args[0]);
      out(`${r.iface}: ${r.address}/${r.prefix} gw ${r.gateway ?? "-"} dns ${(r.dns ?? []).join(",") || "-"}\n`);
    },
  },
  fetch: {
    usage: "fetch URL [FILE] [--sha256 HEX]",
    help: "download over HTTP(S), check sha256",
    run: async (args, { out }) => {
      const { fetchFile } = await import("../../fetch/fetch.ts");
      let sha256: string | undefined;
      const pos: string[] = [];
      for (let i = 0; i < args.length; i++) {
        if (args[i] === "--sha256") sha256 = args[++i];
        else pos.push(args[i]!);
      }
      need(pos, 1, "fetch URL [FILE] [--sha256 HEX]");
      if (args.includes("--sha256") && !sha256) throw new UserError("--sha256 needs a hex digest");
      const dest = pos[1] ?? join("/tmp", pos[0]!.split("/").pop() || "download");
      const r = await fetchFile(pos[0]!, { dest, sha256 });
      out(`${r.sha256}  ${dest} (${r.size} bytes)\n`);
    },
  },
  modprobe: {
    usage: "modprobe MODULE [PARAMS]",
    help: "load a kernel module and its dependencies",
    run: async (args, { out }) => {
      need(args, 1, "modprobe MODULE");
      const { openModuleTree, modprobe } = await import("../coldplug.ts");
      const tree = openModuleTree();
      if (!tree) throw new UserError("no modules.dep in /lib/modules (initramfs built without --kernel)");
      const r = modprobe(tree, args[0]!, undefined, args.slice(1).join(" "));
      if (r.failed.length) throw new UserError(r.failed.map((f) => f.error).join("; "));
      out(r.loaded.length ? `loaded ${r.loaded.join(" ")}\n` : `${args[0]} already loaded\n`);
    },
  },
  lsmod: {
    usage: "lsmod",
    help: "loaded modules",
    run: (_a, { out }) => out(readFileSync("/proc/modules", "utf8")),
  },
  mount: {
    usage: "mount [-t TYPE] [-o OPTS] SRC DIR",
    help: "mount, or list mounts",
    run: (args, { out }) => {
      if (args.length === 0) return out(readFileSync("/proc/mounts", "utf8"));
      let type: string | null = null;
      let opts: string | null = null;
      const pos: string[] = [];
      for (let i = 0; i < args.length; i++) {
        if (args[i] === "-t") type = args[++i] ?? null;
        else if (args[i] === "-o") opts = args[++i] ?? null;
        else pos.push(args[i]!);
      }
      need(pos, 2, "mount [-t TYPE] [-o OPTS] SRC DIR");
      let flags = 0;
      const data = (opts ?? "").split(",").filter((o) => {
        if (o === "ro") return (flags |= 1), false;
        if (o === "rw") return false;
        return o !== "";
      });
      mount(pos[0]!, pos[1]!, type, flags, data.length ? data.join(",") : null);
    },
  },
  umount: {
    usage: "umount DIR",
    help: "unmount",
    run: (args) => {
      need(args, 1, "umount DIR");
      umount(args[0]!);
    },
  },
  reboot: { usage: "reboot", help: "restart the machine", run: () => reboot(REBOOT.RESTART) },
  poweroff: { usage: "poweroff", help: "power the machine off", run: () => reboot(REBOOT.POWER_OFF) },
  sh: {
    usage: "sh [-c COMMAND]",
    help: "a POSIX shell (when built --with-busybox)",
    run: async (args, ctx) => {
      if (!existsSync("/bin/busybox")) throw new UserError("no /bin/busybox in this initramfs (build it with --with-busybox)");
      const env = { ...process.env, ...proxyEnvVars(), PS1: "sh# ", PATH: "/bin:/sbin:/usr/bin:/usr/sbin" };
      if (args[0] === "-c") {
        // Non-interactive: output goes through our console writer, input stays with the shell loop.
        const p = Bun.spawn(["/bin/busybox", "sh", "-c", args.slice(1).join(" ")], { stdin: "ignore", stdout: "pipe", stderr: "pipe", env });
        trackChild(p.pid); // Bun reaps it: PID 1's orphan reaper must not take its exit status first
        const [o, e] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
        ctx.out(o + e);
        const code = await p.exited.finally(() => untrackChild(p.pid));
        if (code !== 0) ctx.out(`sh: exit status ${code}\n`);
        return;
      }
      ctx.pause();
      try {
        const p = Bun.spawn(["/bin/busybox", "sh"], { stdio: ["inherit", "inherit", "inherit"], env });
        trackChild(p.pid);
        await p.exited.finally(() => untrackChild(p.pid));
      } finally {
        ctx.resume();
      }
    },
  },
};
void statSync;
