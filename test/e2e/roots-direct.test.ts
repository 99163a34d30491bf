// The test roots boot on Debian's kernel WITHOUT inetboot (local read-only virtio disk + tmpfs
// overlay, see test/lib/direct-boot.ts): proves the images themselves are mountable by the kernel
// the agent runs and that their /sbin/init does its job, so an inetboot boot test that fails points
// at the agent, not at the image.
import { describe, expect, test } from "bun:test";
import { directGuest } from "../lib/direct-boot.ts";
import { buildBusyboxRoot, buildKnoppixRoot, ROOT_FSTYPES, type BusyboxRoot } from "../lib/roots.ts";

async function bootAndCheck(r: BusyboxRoot, rootpath?: string) {
  const g = directGuest({ image: r.image, fstype: r.fstype, rootpath });
  try {
    const m = await g.waitText(/INETBOOT-ROOT-MARKER fstype=(\S+) root=(\S+) pid=(\d+)/, 90_000);
    expect(m[1]).toBe(r.label);
    expect(m[2]).toBe("overlay");
    expect(m[3]).toBe("1");
    await g.waitText(/^OVERLAY-OK\r?$/m, 30_000);
    const sha = await g.waitText(/^BIG-SHA256 ([0-9a-f]{64})\r?$/m, 60_000);
    expect(sha[1]).toBe(r.sha256OfBig);
    await g.waitText(/^ROOT-DONE/m, 30_000);
    // The root powers the machine off by itself.
    const code = await Promise.race([g.exited, Bun.sleep(30_000).then(() => "still running")]);
    expect(code).toBe(0);
    expect(g.output).not.toContain("OVERLAY-FAIL");
  } catch (e) {
    process.stderr.write(`--- guest console ---\n${g.tail(6000)}\n`);
    throw e;
  } finally {
    g.kill();
    await g.exited;
  }
}

describe("test roots boot directly (no inetboot)", () => {
  for (const fstype of ROOT_FSTYPES)
    test(`${fstype}`, () => bootAndCheck(buildBusyboxRoot({ fstype })), 150_000);
  for (const outer of ["ext4", "iso9660"] as const)
    test(`squashfs at /KNOPPIX/KNOPPIX inside ${outer}`, () => {
      const r = buildKnoppixRoot({ outer });
      return bootAndCheck(r, r.rootpath);
    }, 150_000);
});
