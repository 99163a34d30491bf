// grub.cfg for the boot media (ISO and USB stick), built from menu entries. Pure: text in, text out.
//
// Quoting runs through two parsers. GRUB splits each `linux` line into words (shell-like quotes,
// $variables), then joins the words back into the kernel command line, wrapping a word that holds
// a space in double quotes and putting a backslash before every \ ' and " (grub lib/cmdline.c).
// The kernel (lib/cmdline.c next_arg) understands double quotes but no backslashes. So we read the
// user's command line with the kernel's rules (the same tokenizer the agent uses), single-quote
// each resulting word for GRUB, and refuse the characters GRUB would mangle on the way through.
import { tokenize } from "../boot/cmdline.ts";
import { UserError } from "../sys/errors.ts";

export const KERNEL_PATH = "/boot/vmlinuz";
export const INITRD_PATH = "/boot/initramfs.cpio.zst";
/** Always on the kernel line: VGA and serial consoles (the last one is /dev/console). */
export const CONSOLE_ARGS = "console=tty0 console=ttyS0,115200";
export const RESCUE_TITLE = "Rescue shell";
export const RESCUE_ARGS = "inetboot.shell";

export interface MenuEntry {
  title: string;
  /** kernel command line in the kernel's syntax (double quotes group words) */
  cmdline: string;
}

export interface GrubMenu {
  entries: MenuEntry[];
  /** index into entries + the rescue entry (which comes last); default 0 */
  default?: number;
  /** seconds; -1 waits for a key forever */
  timeout?: number;
  /** GRUB's own menu on the serial port too (115200 8N1, COM1) */
  serial?: boolean;
  /** appended to every entry's command line, the rescue entry's too */
  append?: string;
}

/** Parses `Title|command line` (the first `|` splits; the command line may hold more). */
export function parseEntry(spec: string): MenuEntry {
  const bar = spec.indexOf("|");
  if (bar < 0) throw new UserError(`bad --entry "${spec}": expected 'Title|kernel command line'`);
  const title = spec.slice(0, bar).trim();
  const cmdline = spec.slice(bar + 1).trim();
  if (!title) throw new UserError(`bad --entry "${spec}": empty title`);
  if (/[\r\n\0]/.test(spec)) throw new UserError(`bad --entry "${title}": line breaks are not allowed`);
  checkCmdline(cmdline, `--entry "${title}"`);
  return { title, cmdline };
}

/** Throws a UserError when a kernel command line cannot go through GRUB unchanged. */
export function checkCmdline(cmdline: string, what: string): void {
  if (/[\r\n\0]/.test(cmdline)) throw new UserError(`bad ${what}: line breaks are not allowed in a command line`);
  if ((cmdline.match(/"/g)?.length ?? 0) % 2) throw new UserError(`bad ${what}: unbalanced double quote in "${cmdline}"`);
  const bad = cmdline.match(/[\\']/);
  if (bad) throw new UserError(`bad ${what}: GRUB would pass ${bad[0]} to the kernel with a backslash added; leave it out of "${cmdline}"`);
}

/** The command line as the words GRUB must hand to `linux` (kernel quotes removed). */
export function kernelWords(cmdline: string): string[] {
  return tokenize(cmdline).map((p) => (p.value === undefined ? p.name : `${p.name}=${p.value}`));
}

/** One GRUB word: bare when it is plainly safe, else single-quoted (no expansion inside). */
export function grubWord(word: string): string {
  if (/^[A-Za-z0-9_.,:/=+@%^~-]+$/.test(word)) return word;
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The full `linux` line for an entry's command line. */
export function linuxLine(cmdline: string): string {
  return ["linux", KERNEL_PATH, ...kernelWords(`${CONSOLE_ARGS} ${cmdline}`).map(grubWord)].join(" ");
}

/** All menu entries in order: the given ones, then the rescue shell. */
export function menuEntries(menu: GrubMenu): MenuEntry[] {
  return [...menu.entries, { title: RESCUE_TITLE, cmdline: RESCUE_ARGS }];
}

export function buildGrubConfig(menu: GrubMenu): string {
  const all = menuEntries(menu);
  const def = menu.default ?? 0;
  if (!Number.isInteger(def) || def < 0 || def >= all.length)
    throw new UserError(`bad --default ${def}: the menu has entries 0..${all.length - 1} (${all.length - 1} is "${RESCUE_TITLE}")`);
  const timeout = menu.timeout ?? 5;
  if (!Number.isInteger(timeout) || timeout < -1) throw new UserError(`bad --timeout ${timeout}: seconds, or -1 to wait for a key`);
  const append = menu.append?.trim() ?? "";
  if (append) checkCmdline(append, "--append");
  for (const e of all) {
    if (!e.title.trim() || /[\r\n\0]/.test(e.title)) throw new UserError(`bad menu title "${e.title}"`);
    checkCmdline(e.cmdline, `entry "${e.title}"`);
  }

  const L: string[] = ["# inetboot boot menu, written by `inetboot iso` / `inetboot usb`; edit freely."];
  if (menu.serial) {
    L.push("serial --unit=0 --speed=115200", "terminal_input serial console", "terminal_output serial console");
  }
  L.push(`set default=${def}`, `set timeout=${timeout}`, "insmod all_video", "");
  for (const e of all) {
    const cmdline = [e.cmdline, append].filter(Boolean).join(" ");
    L.push(
      `menuentry ${grubWord(e.title)} {`,
      `\techo ${grubWord(`Loading ${e.title}...`)}`,
      `\t${linuxLine(cmdline)}`,
      `\tinitrd ${INITRD_PATH}`,
      "}",
    );
  }
  return L.join("\n") + "\n";
}
