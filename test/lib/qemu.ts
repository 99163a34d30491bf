// Boots QEMU with the Debian kernel and our initramfs and reads the serial console: `@inetboot`
// event lines and markers printed by the guest. Tests assert on what the guest printed.
import { existsSync, readdirSync, readlinkSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";

export const ROOT = resolve(import.meta.dir, "../..");
export const BUILD = join(ROOT, "build");

/** build/kernel: Debian's kernel package unpacked by `make kernel`. */
export const KERNEL_DIR = join(BUILD, "kernel");

/** The version of build/kernel's kernel (its lib/modules/VERSION). */
export function kernelVersion(): string {
  const dir = join(KERNEL_DIR, "lib/modules");
  const v = existsSync(dir) ? readdirSync(dir).sort()[0] : undefined; // as ls lists them
  if (!v) throw new Error(`no modules under ${dir}: run 'make kernel'`);
  return v;
}

export function kernelPath(): string {
  const p = join(BUILD, "kernel/vmlinuz");
  if (!existsSync(p)) throw new Error(`no kernel at ${p}: run 'make kernel'`);
  return join(BUILD, "kernel", readlinkSync(p));
}
export function initrdPath(): string {
  const p = join(BUILD, "initramfs.cpio.zst");
  if (!existsSync(p)) throw new Error(`no initramfs at ${p}: run 'make'`);
  return p;
}

export interface BootOptions {
  append?: string;
  memMB?: number;
  initrd?: string;
  kernel?: string;
  /** QEMU network arguments; default user networking with a virtio NIC. */
  net?: string[];
  extra?: string[];
  /** Prefix command (e.g. ["ip", "netns", "exec", "ns"]). */
  wrap?: string[];
  /** Echo the console to stderr (INETBOOT_TEST_CONSOLE=1 also does). */
  echo?: boolean;
  /** Boot through the firmware (ISO, USB stick) instead of -kernel/-initrd/-append. */
  firmware?: boolean;
  /** A unix socket for the human monitor (device_del and friends), instead of none. */
  monitor?: string;
  /** Virtual CPUs (default 1). */
  cpus?: number;
}

export interface InetEvent {
  t: number;
  ev: string;
  [k: string]: unknown;
}

/** The `@inetboot {json}` event lines of a captured console, in order. */
export function parseEvents(text: string): InetEvent[] {
  const out: InetEvent[] = [];
  for (const m of text.matchAll(/@inetboot (\{.*\})\r?$/gm)) {
    try {
      out.push(JSON.parse(m[1]!));
    } catch {
      /* a line cut by other console output */
    }
  }
  return out;
}

export class Guest {
  output = "";
  private proc: Subprocess<"pipe", "pipe", "pipe">;
  private waiters: (() => void)[] = [];
  readonly exited: Promise<number>;

  constructor(opts: BootOptions = {}) {
    const append = ["console=ttyS0", "panic=-1", "inetboot.log=json", opts.append ?? ""].join(" ").trim();
    const args = [
      ...(opts.wrap ?? []),
      "qemu-system-x86_64",
      ...(process.env.INETBOOT_KVM === "1" ? ["-accel", "kvm", "-cpu", "host"] : ["-accel", "tcg", "-cpu", "max"]),
      "-m", String(opts.memMB ?? 1024),
      "-smp", String(opts.cpus ?? 1),
      "-no-reboot",
      "-display", "none",
      "-serial", "stdio",
      "-monitor", opts.monitor ? `unix:${opts.monitor},server=on,wait=off` : "none",
      ...(opts.firmware ? [] : ["-kernel", opts.kernel ?? kernelPath(), "-initrd", opts.initrd ?? initrdPath(), "-append", append]),
      ...(opts.net ?? ["-nic", "user,model=virtio-net-pci"]),
      ...(opts.extra ?? []),
    ];
    this.proc = Bun.spawn(args, { stdin: "pipe", stdout: "pipe", stderr: "pipe" }) as Subprocess<"pipe", "pipe", "pipe">;
    const echo = opts.echo || process.env.INETBOOT_TEST_CONSOLE === "1";
    const pump = async (s: ReadableStream<Uint8Array>) => {
      const dec = new TextDecoder();
      for await (const chunk of s) {
        const text = dec.decode(chunk, { stream: true });
        this.output += text;
        if (echo) process.stderr.write(text);
        for (const w of this.waiters.splice(0)) w();
      }
    };
    void pump(this.proc.stdout);
    void pump(this.proc.stderr);
    this.exited = this.proc.exited.then((c) => {
      for (const w of this.waiters.splice(0)) w();
      return c;
    });
  }

  /** All `@inetboot {json}` events seen so far. */
  events(): InetEvent[] {
    return parseEvents(this.output);
  }

  event(name: string): InetEvent | undefined {
    return this.events().find((e) => e.ev === name);
  }

  /** Waits until `test` finds something in the output, or fails with the console tail. */
  async waitFor<T>(test: (g: Guest) => T | undefined | false | null, timeoutMs: number, what: string): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let done = false;
    void this.exited.then(() => (done = true));
    for (;;) {
      const r = test(this);
      if (r) return r;
      if (done) throw new Error(`QEMU exited while waiting for ${what}\n--- console tail ---\n${this.tail()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n--- console tail ---\n${this.tail()}`);
      await new Promise<void>((res) => {
        const t = setTimeout(res, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
  }

  waitEvent(name: string, timeoutMs = 120_000): Promise<InetEvent> {
    return this.waitFor((g) => g.event(name), timeoutMs, `event ${name}`);
  }

  /** Waits for a regex in the console output after `from` (an output offset). */
  waitText(re: RegExp, timeoutMs = 60_000, from = 0): Promise<RegExpMatchArray> {
    return this.waitFor((g) => g.output.slice(from).match(re), timeoutMs, `text ${re}`);
  }

  /** Types a line into the serial console. */
  send(line: string) {
    this.proc.stdin.write(line + "\n");
    this.proc.stdin.flush();
  }

  /** Sends a shell command and waits for the next prompt; returns what the command printed. */
  async shell(line: string, timeoutMs = 60_000): Promise<string> {
    const from = this.output.length;
    this.send(line);
    const m = await this.waitText(/inetboot# $/m, timeoutMs, from);
    void m;
    const text = this.output.slice(from);
    return text.slice(0, text.lastIndexOf("inetboot# "));
  }

  tail(n = 4000): string {
    return this.output.slice(-n);
  }

  kill() {
    try {
      this.proc.kill(9);
    } catch {
      /* already gone */
    }
  }
}

/** Sends one command to a guest's human monitor socket (see BootOptions.monitor). */
export async function monitorCommand(path: string, command: string): Promise<string> {
  let out = "";
  const sock = await Bun.connect({ unix: path, socket: { data: (_s, d) => void (out += d.toString()) } });
  sock.write(`${command}\n`);
  await Bun.sleep(500);
  sock.end();
  return out;
}

/** Boots and guarantees the QEMU process dies when the callback ends. */
export async function withGuest<T>(opts: BootOptions, fn: (g: Guest) => Promise<T>): Promise<T> {
  const g = new Guest(opts);
  try {
    return await fn(g);
  } catch (e) {
    if (process.env.INETBOOT_TEST_CONSOLE !== "1") process.stderr.write(`--- guest console ---\n${g.tail(8000)}\n`);
    throw e;
  } finally {
    g.kill();
    await g.exited;
  }
}
