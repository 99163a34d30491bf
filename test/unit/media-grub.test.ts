// grub.cfg generation: menu shape, GRUB quoting of titles and kernel command lines, and the
// characters that cannot survive GRUB's re-quoting are refused.
import { describe, expect, test } from "bun:test";
import { tokenize } from "../../src/boot/cmdline.ts";
import {
  buildGrubConfig,
  grubWord,
  kernelWords,
  linuxLine,
  parseEntry,
} from "../../src/media/grub-config.ts";
import { menuFromArgs } from "../../src/media/cli.ts";

/** GRUB's own word splitting for the subset we emit: bare words and '...' with '\'' escapes. */
function grubSplit(line: string): string[] {
  const words: string[] = [];
  let cur = "";
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      cur += line.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === "\\") {
      cur += line[++i];
      inWord = true;
    } else if (c === " ") {
      if (inWord) words.push(cur);
      cur = "";
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** What GRUB's linux loader hands the kernel for a list of words (quote words holding spaces). */
function grubToKernel(words: string[]): string {
  return words.map((w) => (w.includes(" ") ? `"${w}"` : w)).join(" ");
}

describe("parseEntry", () => {
  test("splits on the first bar only", () => {
    expect(parseEntry("Debian|inetboot.root=http://h/s/ a|b=1")).toEqual({ title: "Debian", cmdline: "inetboot.root=http://h/s/ a|b=1" });
  });
  test("rejects a missing bar, an empty title, line breaks, backslashes, single and unbalanced quotes", () => {
    expect(() => parseEntry("no bar")).toThrow(/Title\|kernel command line/);
    expect(() => parseEntry("|x=1")).toThrow(/empty title/);
    expect(() => parseEntry("A|x=1\nreboot")).toThrow(/line breaks/);
    expect(() => parseEntry("A|x=a\\b")).toThrow(/backslash/);
    expect(() => parseEntry("A|x='a b'")).toThrow(/'/);
    expect(() => parseEntry('A|x="a b')).toThrow(/unbalanced/);
  });
});

describe("quoting", () => {
  test("safe words stay bare, others are single-quoted", () => {
    expect(grubWord("inetboot.root=http://10.0.2.2:8080/s/")).toBe("inetboot.root=http://10.0.2.2:8080/s/");
    expect(grubWord("note=a b")).toBe("'note=a b'");
    expect(grubWord("x=$root")).toBe("'x=$root'");
    expect(grubWord("Bob's")).toBe("'Bob'\\''s'");
    expect(grubWord("a;b")).toBe("'a;b'");
  });

  test("kernel double quotes become one GRUB word without the quotes", () => {
    expect(kernelWords('a=1 note="hello world" "b=x y" flag')).toEqual(["a=1", "note=hello world", "b=x y", "flag"]);
  });

  const lines = [
    "inetboot.root=http://h/s/ ip=dhcp",
    'note="two words" x=$y ; echo',
    'inetboot.url=https://h/m.json?a=1&b=2 "msg=a  b" -- single',
  ];
  for (const cmdline of lines) {
    test(`kernel sees the same parameters after GRUB: ${cmdline}`, () => {
      const line = linuxLine(cmdline);
      const words = grubSplit(line);
      expect(words.slice(0, 2)).toEqual(["linux", "/boot/vmlinuz"]);
      const kernelCmdline = grubToKernel(words.slice(2));
      expect(tokenize(kernelCmdline)).toEqual(tokenize(`console=tty0 console=ttyS0,115200 ${cmdline}`));
    });
  }
});

describe("buildGrubConfig", () => {
  const menu = {
    entries: [
      { title: "Debian (network root)", cmdline: "inetboot.root=http://h/debian/" },
      { title: "Bob's kexec", cmdline: "inetboot.url=http://h/m.json" },
    ],
  };

  test("one entry per source plus the rescue shell, default and timeout", () => {
    const cfg = buildGrubConfig({ ...menu, default: 2, timeout: 3 });
    const titles = [...cfg.matchAll(/^menuentry (.*) \{$/gm)].map((m) => grubSplit(m[1]!)[0]);
    expect(titles).toEqual(["Debian (network root)", "Bob's kexec", "Rescue shell"]);
    expect(cfg).toMatch(/^set default=2$/m);
    expect(cfg).toMatch(/^set timeout=3$/m);
    expect(cfg).toContain("\tlinux /boot/vmlinuz console=tty0 console=ttyS0,115200 inetboot.root=http://h/debian/\n");
    expect(cfg).toContain("\tlinux /boot/vmlinuz console=tty0 console=ttyS0,115200 inetboot.shell\n");
    expect(cfg.match(/^\tinitrd \/boot\/initramfs\.cpio\.zst$/gm)?.length).toBe(3);
    expect(cfg).not.toContain("serial");
  });

  test("--serial puts GRUB on COM1 too, --append reaches every entry", () => {
    const cfg = buildGrubConfig({ ...menu, serial: true, append: 'inetboot.log=json note="a b"' });
    expect(cfg).toContain("serial --unit=0 --speed=115200\nterminal_input serial console\nterminal_output serial console\n");
    const linux = cfg.split("\n").filter((l) => l.startsWith("\tlinux "));
    expect(linux.length).toBe(3);
    for (const l of linux) expect(l.endsWith(" inetboot.log=json 'note=a b'")).toBe(true);
  });

  test("bad default, timeout and append are refused", () => {
    expect(() => buildGrubConfig({ ...menu, default: 3 })).toThrow(/0\.\.2/);
    expect(() => buildGrubConfig({ ...menu, default: -1 })).toThrow(/default/);
    expect(() => buildGrubConfig({ ...menu, timeout: -2 })).toThrow(/timeout/);
    expect(() => buildGrubConfig({ ...menu, append: "x='y'" })).toThrow(/append/);
  });
});

describe("menuFromArgs", () => {
  test("turns option text into a menu", () => {
    const m = menuFromArgs({ entries: ["A|a=1", "B|b=2"], default: "1", timeout: "0", serial: true });
    expect(m).toEqual({ entries: [{ title: "A", cmdline: "a=1" }, { title: "B", cmdline: "b=2" }], default: 1, timeout: 0, serial: true, append: undefined });
  });
  test("rejects non-numbers", () => {
    expect(() => menuFromArgs({ entries: [], default: "x" })).toThrow(/--default/);
    expect(() => menuFromArgs({ entries: [], timeout: "1.5" })).toThrow(/--timeout/);
    expect(() => menuFromArgs({ entries: [], timeout: "-3" })).toThrow(/--timeout/);
  });
});
