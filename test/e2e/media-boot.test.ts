// Boot media end to end: `inetboot iso` and `inetboot usb` build real images; host tools nobody here
// wrote (xorriso, grub-script-check, partx, blkid, mtools, losetup) read them back; QEMU boots them
// through real firmware (SeaBIOS, OVMF) and GRUB into our agent's rescue shell, and the guest's own
// view (/proc/cmdline, /sys/class/block, the FAT boot sector) is checked.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildGrubConfig } from "../../src/media/grub-config.ts";
import { initrdPath, kernelPath, ROOT, withGuest, type Guest } from "../lib/qemu.ts";
import { need, run } from "../lib/sh.ts";
import { buildBusyboxRoot } from "../lib/roots.ts";
import { startServe } from "../lib/servers.ts";
import { scratch } from "../lib/tmp.ts";

const OVMF = "/usr/share/ovmf/OVMF.fd";
const T = 300_000;
let dir: string;
let iso: string;
let img: string;
const sha = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");

// The test menu: a network entry that would fail here, and the Rescue shell as the default, so the
// firmware → GRUB → kernel → agent path is exercised without a server. The note checks quoting.
const MENU = ["--entry", "Debian (network root)|inetboot.root=http://10.0.2.2:1/none/", "--default", "1", "--timeout", "1", "--serial"];
const APPEND = ["--append", 'inetboot.log=json media.note="hello world"'];

function cli(...args: string[]): string {
  return run([process.execPath, join(ROOT, "src/main.ts"), ...args]);
}

beforeAll(() => {
  for (const [t, p] of [["grub-mkrescue", "grub-common"], ["xorriso", "xorriso"], ["mcopy", "mtools"], ["partx", "util-linux"], ["blkid", "util-linux"], ["losetup", "mount"], ["grub-script-check", "grub-common"], ["qemu-system-x86_64", "qemu-system-x86"]] as const)
    need(t, p);
  dir = scratch("inetboot-media-");
  iso = join(dir, "inetboot.iso");
  img = join(dir, "stick.img");
  expect(cli("iso", "--out", iso, ...MENU, ...APPEND).trim()).toBe(iso);
  expect(cli("usb", "--out", img, "--size", "160M", ...MENU, ...APPEND).trim()).toBe(img);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Firmware boot: the machine starts from the medium, not from -kernel/-initrd. */
function firmwareBoot(extra: string[]) {
  return { firmware: true, extra };
}

async function toShell(g: Guest) {
  await g.waitText(/GNU GRUB/, 120_000);
  await g.waitText(/Rescue shell/, 30_000);
  const start = await g.waitEvent("agent.start", 180_000);
  expect(start.pid).toBe(1);
  await g.waitEvent("shell.ready", 120_000);
  await g.waitText(/inetboot# $/m);
  // the kernel got the menu's command line, the quoted parameter as one word
  const cmdline = await g.shell("cat /proc/cmdline");
  expect(cmdline).toContain('console=ttyS0,115200 inetboot.shell inetboot.log=json "media.note=hello world"');
}

describe("inetboot iso", () => {
  test("hybrid BIOS + UEFI El Torito image holding our kernel, initramfs and menu", () => {
    const report = run(["xorriso", "-indev", iso, "-report_el_torito", "plain"]);
    expect(report).toMatch(/El Torito boot img\s*:\s*1\s+BIOS/);
    expect(report).toMatch(/El Torito boot img\s*:\s*2\s+UEFI/);
    const x = join(dir, "x");
    run(["xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/boot", x]);
    expect(sha(join(x, "vmlinuz"))).toBe(sha(kernelPath()));
    expect(sha(join(x, "initramfs.cpio.zst"))).toBe(sha(initrdPath()));
    const cfg = readFileSync(join(x, "grub/grub.cfg"), "utf8");
    run(["grub-script-check", join(x, "grub/grub.cfg")]);
    expect(cfg).toContain("menuentry 'Debian (network root)' {");
    expect(cfg).toContain("menuentry 'Rescue shell' {");
    expect(cfg).toMatch(/^set default=1$/m);
    rmSync(x, { recursive: true, force: true });
  });

  test("missing inputs and tools give one clear line", () => {
    const p = Bun.spawnSync([process.execPath, join(ROOT, "src/main.ts"), "iso", "--out", join(dir, "n.iso"), "--initrd", join(dir, "none")], { stderr: "pipe" });
    expect(p.exitCode).toBe(1);
    expect(p.stderr.toString()).toBe(`inetboot: initramfs ${join(dir, "none")} not found\n`);
    const q = Bun.spawnSync([process.execPath, join(ROOT, "src/main.ts"), "iso", "--out", join(dir, "n.iso")], { stderr: "pipe", env: { ...process.env, PATH: "/nonexistent" } });
    expect(q.exitCode).toBe(1);
    expect(q.stderr.toString()).toMatch(/^inetboot: grub-mkrescue not found: apt-get install grub-common\n$/);
  });

  test("grub-script-check accepts awkward titles and command lines", () => {
    const f = join(dir, "awkward.cfg");
    writeFileSync(f, buildGrubConfig({ entries: [{ title: "Bob's $HOME; {x}", cmdline: 'a="b c" d=$e f=#g ; h' }], serial: true }));
    run(["grub-script-check", f]);
  });

  test("boots with SeaBIOS from the CD to the rescue shell", async () => {
    await withGuest(firmwareBoot(["-cdrom", iso, "-boot", "d"]), async (g) => {
      await toShell(g);
      g.send("poweroff");
      expect(await g.exited).toBe(0);
    });
  }, T);

  test("boots a network-root entry from the CD (SeaBIOS → GRUB → agent → NBD root)", async () => {
    const r = buildBusyboxRoot({ fstype: "squashfs" });
    const www = join(dir, "www");
    run([join(ROOT, "build/inetboot"), "pack", r.image, join(www, "store")]);
    const srv = await startServe(www);
    try {
      const url = srv.url.replace("127.0.0.1", "10.0.2.2");
      const demoIso = join(dir, "demo.iso");
      cli("iso", "--out", demoIso, "--entry", `Busybox over NBD|inetboot.root=${url}store/ quiet panic=-1`, "--default", "0", "--timeout", "1", "--serial", "--append", "inetboot.log=json");
      await withGuest(firmwareBoot(["-cdrom", demoIso, "-boot", "d"]), async (g) => {
        await g.waitText(/GNU GRUB/, 120_000);
        await g.waitEvent("root.mounted", 180_000);
        await g.waitText(/ROOT-DONE/, 120_000);
        expect(g.output).toContain(`BIG-SHA256 ${r.sha256OfBig}`);
        expect(await g.exited).toBe(0);
      });
    } finally {
      await srv.stop();
    }
  }, T);

  test("boots with OVMF (UEFI) from the CD to the rescue shell", async () => {
    await withGuest(firmwareBoot(["-bios", OVMF, "-cdrom", iso, "-boot", "d"]), async (g) => {
      await toShell(g);
      g.send("poweroff");
      expect(await g.exited).toBe(0);
    });
  }, T);
});

describe("inetboot usb", () => {
  const ESP_START = 4096;

  test("GPT with a BIOS boot partition and a FAT32 ESP holding GRUB, kernel, initramfs and inetboot-cache/", () => {
    const parts = run(["partx", "--raw", "--noheadings", "-o", "NR,START,END,TYPE,NAME", img]).trim().split("\n");
    expect(parts.length).toBe(2);
    const [esp, bios] = parts.map((l) => l.split(" "));
    expect(esp!.slice(0, 2)).toEqual(["1", String(ESP_START)]);
    expect(esp![3]).toBe("c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
    expect(bios!.slice(0, 3)).toEqual(["2", "2048", "4095"]);
    expect(bios![3]).toBe("21686148-6e69-6e6f-7461-656e65656646");
    const off = ESP_START * 512;
    const probe = run(["blkid", "-p", "-O", String(off), "-o", "export", img]);
    expect(probe).toMatch(/^TYPE=vfat$/m);
    expect(probe).toMatch(/^VERSION=FAT32$/m);
    expect(probe).toMatch(/^LABEL=INETBOOT$/m);
    const at = `${img}@@${off}`;
    const env = { MTOOLS_SKIP_CHECK: "1" };
    const listing = run(["mdir", "-i", at, "-b", "-/", "::/"], { env });
    for (const p of ["::/EFI/BOOT/BOOTX64.EFI", "::/boot/grub/grub.cfg", "::/boot/grub/i386-pc/linux.mod", "::/boot/grub/x86_64-efi/linux.mod", "::/inetboot-cache/"])
      expect(listing).toContain(p);
    const x = join(dir, "u");
    run(["mcopy", "-i", at, "-s", "::/boot", x], { env });
    expect(sha(join(x, "vmlinuz"))).toBe(sha(kernelPath()));
    expect(sha(join(x, "initramfs.cpio.zst"))).toBe(sha(initrdPath()));
    run(["grub-script-check", join(x, "grub/grub.cfg")]);
    rmSync(x, { recursive: true, force: true });
    // GRUB's boot.img is in the MBR, pointing at core.img in the BIOS boot partition
    const head = readFileSync(img).subarray(0, 2048 * 512 + 512);
    expect(Buffer.from(head.subarray(0, 0x5c)).equals(readFileSync("/usr/lib/grub/i386-pc/boot.img").subarray(0, 0x5c))).toBe(true);
    expect(head.readBigUInt64LE(0x5c)).toBe(2048n);
    const efi = join(dir, "BOOTX64.EFI");
    run(["mcopy", "-i", at, "::/EFI/BOOT/BOOTX64.EFI", efi], { env });
    expect(readFileSync(efi).subarray(0, 2).toString()).toBe("MZ");
  });

  test("--device writes a real block device (a loop device), refusing without the flag", () => {
    const backing = join(dir, "loop.img");
    writeFileSync(backing, "");
    run(["truncate", "-s", "128M", backing]);
    const dev = run(["losetup", "-f", "--show", backing]).trim();
    try {
      const p = Bun.spawnSync([process.execPath, join(ROOT, "src/main.ts"), "usb", "--device", dev], { stderr: "pipe" });
      expect(p.exitCode).toBe(1);
      expect(p.stderr.toString()).toContain("--yes-really-overwrite");
      expect(cli("usb", "--device", dev, "--yes-really-overwrite").trim()).toBe(dev);
      const parts = run(["partx", "--raw", "--noheadings", "-o", "NR,START", backing]).trim();
      expect(parts).toBe(`1 ${ESP_START}\n2 2048`);
      expect(run(["blkid", "-p", "-O", String(ESP_START * 512), "-o", "export", backing])).toMatch(/^LABEL=INETBOOT$/m);
    } finally {
      run(["losetup", "-d", dev]);
    }
  });

  async function stickShell(g: Guest) {
    await toShell(g);
    // usb-storage registers its disk after the first coldplug pass; the agent's cache search
    // coldplugs again, so sd_mod is loaded without asking.
    expect(await g.shell("lsmod")).toMatch(/^sd_mod /m);
    // the stick as the booted kernel sees it: whole disk + both partitions, the ESP where we put it
    let ls = "";
    for (let i = 0; i < 15 && !ls.includes("/dev/sda2"); i++) ls = await g.shell("sh -c 'sleep 1; ls /dev/sd* 2>/dev/null'");
    expect(ls).toContain("/dev/sda1");
    expect(ls).toContain("/dev/sda2");
    expect(await g.shell("sh -c 'cat /sys/class/block/sda1/start'")).toMatch(new RegExp(`\\n${ESP_START}\\r?\\n`));
    // FAT32 volume label in the ESP's boot sector (offset 71)
    expect(await g.shell("sh -c 'dd if=/dev/sda1 bs=1 skip=71 count=11 2>/dev/null; echo'")).toContain("INETBOOT   ");
    g.send("poweroff");
    expect(await g.exited).toBe(0);
  }

  const STICK = ["-device", "qemu-xhci", "-drive", `if=none,id=stick,format=raw,file=PLACEHOLDER`, "-device", "usb-storage,drive=stick,bootindex=0"];
  const stick = () => STICK.map((a) => a.replace("PLACEHOLDER", img));

  test("boots with OVMF (UEFI) from the USB stick; the guest sees the stick's partitions", async () => {
    await withGuest(firmwareBoot(["-bios", OVMF, ...stick()]), stickShell);
  }, T);

  test("boots with SeaBIOS from the USB stick (boot.img + core.img in the BIOS boot partition)", async () => {
    await withGuest(firmwareBoot(stick()), stickShell);
  }, T);
});
