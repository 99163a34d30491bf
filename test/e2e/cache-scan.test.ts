// inetboot.cache=auto looks at every disk of the machine for an inetboot-cache/ folder. A disk
// without one (the machine's own system) must come out of the boot bit for bit as it went in:
// looked at read-only, an ext4's journal not replayed, its superblock (mount count, times) untouched.
import { expect, test } from "bun:test";
import { join } from "node:path";
import { withGuest } from "../lib/qemu.ts";
import { shaFile } from "../lib/servers.ts";
import { run } from "../lib/sh.ts";
import { scratch } from "../lib/tmp.ts";

test("a disk without the cache folder is not written by the cache scan (ext4 and vfat)", async () => {
  const dir = scratch("inetboot-cache-scan-");
  const ext4 = join(dir, "system.ext4");
  const vfat = join(dir, "esp.vfat");
  run(["mkfs.ext4", "-q", "-F", "-L", "system", ext4, "16M"]);
  run(["mkfs.vfat", "-C", vfat, "16384"]);
  const before = [shaFile(ext4), shaFile(vfat)];
  const drives = [ext4, vfat].flatMap((f) => ["-drive", `file=${f},format=raw,if=virtio`]);
  await withGuest({ append: "quiet inetboot.shell", extra: drives }, async (g) => {
    await g.waitEvent("shell.ready");
    await g.waitText(/inetboot# $/m);
    // both were looked at (their modules loaded, no cache found on either)
    expect(g.output).not.toContain("cache.mounted");
    g.send("poweroff");
    expect(await g.exited).toBe(0);
  });
  expect([shaFile(ext4), shaFile(vfat)]).toEqual(before);
}, 120_000);
