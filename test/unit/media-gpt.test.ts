// GPT codec and BIOS boot-code patching, checked with byte vectors and round trips.
import { describe, expect, test } from "bun:test";
import { readFileSync, statSync } from "node:fs";
import { patchBootImg, patchCoreImg } from "../../src/media/bios-boot.ts";
import { crc32, decodeGpt, encodeGpt, GPT_TYPE, guidBytes, guidText, SECTOR, usableRange } from "../../src/media/gpt.ts";
import { checkDevice, usbLayout } from "../../src/media/usb.ts";

describe("gpt", () => {
  test("crc32 is the IEEE/zlib CRC the UEFI spec uses", () => {
    expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926);
  });

  test("GUIDs are stored mixed-endian", () => {
    const b = guidBytes(GPT_TYPE.esp);
    expect(Buffer.from(b).toString("hex")).toBe("28732ac11ff8d211ba4b00a0c93ec93b");
    expect(guidText(b)).toBe(GPT_TYPE.esp);
    expect(() => guidBytes("nope")).toThrow(/bad GUID/);
  });

  test("layout, encode and decode round trip; backup header at the last sector", () => {
    const bytes = 64 << 20;
    const l = usbLayout(bytes);
    const disk = new Uint8Array(bytes);
    for (const w of encodeGpt(l)) disk.set(w.data, w.offset);
    // protective MBR
    expect(disk[446 + 4]).toBe(0xee);
    expect(new DataView(disk.buffer).getUint32(446 + 8, true)).toBe(1);
    expect(new DataView(disk.buffer).getUint32(446 + 12, true)).toBe(bytes / SECTOR - 1);
    expect([disk[510], disk[511]]).toEqual([0x55, 0xaa]);
    const d = decodeGpt(disk.subarray(0, 34 * SECTOR));
    expect(d.diskGuid).toBe(l.diskGuid);
    expect(d.altLba).toBe(bytes / SECTOR - 1);
    expect(d.partitions.map((p) => [p.type, p.firstLba, p.lastLba, p.name])).toEqual(
      l.partitions.map((p) => [p.type, p.firstLba, p.lastLba, p.name]),
    );
    const esp = l.partitions[0]!;
    expect(esp.firstLba).toBe(4096);
    expect((esp.lastLba + 1) % 2048).toBe(0);
    expect(esp.lastLba).toBeLessThanOrEqual(usableRange(bytes / SECTOR).last);
    // backup header: same signature, MyLBA = last sector, AlternateLBA = 1
    const last = bytes - SECTOR;
    expect(new TextDecoder().decode(disk.subarray(last, last + 8))).toBe("EFI PART");
    expect(new DataView(disk.buffer).getBigUint64(last + 24, true)).toBe(BigInt(bytes / SECTOR - 1));
    expect(new DataView(disk.buffer).getBigUint64(last + 32, true)).toBe(1n);
    // a flipped byte in the header is caught
    disk[SECTOR + 60] ^= 1;
    expect(() => decodeGpt(disk.subarray(0, 34 * SECTOR))).toThrow(/header checksum/);
  });

  test("overlapping or out-of-range partitions are refused", () => {
    const l = usbLayout(64 << 20);
    expect(() => encodeGpt({ ...l, partitions: [l.partitions[0]!, { ...l.partitions[1]!, lastLba: 5000 }] })).toThrow(/overlap/);
    expect(() => encodeGpt({ ...l, partitions: [{ ...l.partitions[0]!, lastLba: l.sectors }] })).toThrow(/outside/);
    expect(() => usbLayout(1 << 20)).toThrow(/too small/);
  });
});

describe("bios boot code", () => {
  const bootImg = new Uint8Array(readFileSync("/usr/lib/grub/i386-pc/boot.img"));

  test("boot.img learns core.img's LBA and keeps out of the partition table", () => {
    const code = patchBootImg(bootImg, 2048);
    expect(code.length).toBe(0x1b8);
    expect(new DataView(code.buffer).getBigUint64(0x5c, true)).toBe(2048n);
    expect([code[0x66], code[0x67]]).toEqual([0x90, 0x90]);
    // everything else is GRUB's code as shipped
    const same = (a: number, b: number) => expect(Buffer.from(code.subarray(a, b)).equals(Buffer.from(bootImg.subarray(a, b)))).toBe(true);
    same(0, 0x5c);
    same(0x64, 0x66);
    same(0x68, 0x1b8);
    expect(() => patchBootImg(bootImg.subarray(0, 100), 1)).toThrow(/512/);
  });

  test("core.img's blocklist names the sectors after its first", () => {
    const core = new Uint8Array(5 * SECTOR + 17).fill(7);
    const out = patchCoreImg(core, 2048);
    expect(out.length).toBe(6 * SECTOR);
    const v = new DataView(out.buffer);
    expect(v.getBigUint64(500, true)).toBe(2049n);
    expect(v.getUint16(508, true)).toBe(5);
    expect(v.getUint16(510, true)).toBe(0x0707); // the segment is left as grub-mkimage wrote it
    expect(() => patchCoreImg(new Uint8Array(SECTOR), 1)).toThrow(/too small/);
  });
});

describe("device checks", () => {
  test("no --yes-really-overwrite, not a block device, mounted", () => {
    expect(() => checkDevice("/dev/null", false)).toThrow(/--yes-really-overwrite/);
    expect(() => checkDevice("/etc/hostname", true)).toThrow(/not a block device/);
    expect(() => checkDevice("/dev/does-not-exist", true)).toThrow(/not found/);
    const loops = ["/dev/loop0", "/dev/loop1"].filter((p) => {
      try {
        return statSync(p).isBlockDevice();
      } catch {
        return false;
      }
    });
    expect(loops.length).toBeGreaterThan(0);
    expect(() => checkDevice(loops[0]!, true, `${loops[0]}p1 /media/stick vfat rw 0 0\n`)).toThrow(/in use/);
    expect(() => checkDevice(loops[0]!, true, `${loops[0]} none swap\n`)).toThrow(/in use/);
    // loop1 is not a partition of loop0 ... but loop0p1 is; sdb1 of sdb, not sdbb
    // (a detached loop device then fails on its size, not on the mount table)
    expect(() => checkDevice(loops[0]!, true, `${loops[0]}1 /x vfat\n/dev/loop1${loops[0]!.slice(-1)} /y vfat\n`)).not.toThrow(/in use/);
  });
});
