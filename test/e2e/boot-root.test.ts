// End to end: the agent boots a block store on HTTP as the root filesystem through the kernel's
// NBD driver. The busybox test root proves it from inside: marker, writable overlay, and the
// sha256 of a data file read through NBD, the fetcher and the store.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { withGuest, type Guest } from "../lib/qemu.ts";
import { expectRescueShell } from "../lib/rescue.ts";
import { buildBusyboxRoot, buildKnoppixRoot, type BusyboxRoot } from "../lib/roots.ts";
import { run } from "../lib/sh.ts";
import { startNginx, startServe, type Nginx, type ServeProcess } from "../lib/servers.ts";
import { scratch } from "../lib/tmp.ts";

const T = 240_000;
const www = scratch("inetboot-roots-");
const roots: Record<string, BusyboxRoot> = {};
let serve: ServeProcess;
let nginx: Nginx;

function pack(image: string, name: string) {
  run([join(import.meta.dir, "../../build/inetboot"), "pack", image, join(www, name)]);
}

beforeAll(async () => {
  for (const fstype of ["squashfs", "ext4", "erofs", "iso9660"] as const) {
    roots[fstype] = buildBusyboxRoot({ fstype });
    pack(roots[fstype]!.image, fstype);
  }
  roots.knoppix = buildKnoppixRoot({ outer: "ext4" });
  pack(roots.knoppix!.image, "knoppix");
  mkdirSync(join(www, "junk"));
  writeFileSync(join(www, "junk.img"), new Uint8Array(4 << 20).fill(0x5a));
  pack(join(www, "junk.img"), "junk");
  serve = await startServe(www);
  nginx = await startNginx(www, scratch("inetboot-nginx-"));
}, T);
afterAll(async () => {
  await serve?.stop();
  await nginx?.stop();
});

/** 127.0.0.1:P on the host is 10.0.2.2:P in the guest. */
const guestUrl = (hostUrl: string, path: string) => hostUrl.replace("127.0.0.1", "10.0.2.2") + path;

async function expectRootBoot(g: Guest, r: BusyboxRoot, jit = "0") {
  const att = await g.waitEvent("nbd.attached");
  expect(String(att.device)).toMatch(/^\/dev\/nbd\d+$/);
  await g.waitEvent("switch_root");
  await g.waitText(/ROOT-DONE/, 120_000);
  expect(g.output).toContain(`INETBOOT-ROOT-MARKER fstype=${r.label}`);
  expect(g.output).toContain("root=overlay");
  expect(g.output).toContain("OVERLAY-OK");
  expect(g.output).toContain(`BIG-SHA256 ${r.sha256OfBig}`);
  // The NBD daemon is still running under the new root, at a higher priority than the system,
  // without the optimizing JIT unless the command line asked for it (initramfs/init.c).
  expect(g.output).toMatch(new RegExp(`NBD-DAEMON nice=-10 BUN_JSC_useDFGJIT=${jit}\\b`));
  expect(await g.exited).toBe(0);
  expect(g.output).not.toMatch(/I\/O error|Kernel panic/);
}

describe("network root through NBD", () => {
  test(
    "squashfs store served by inetboot serve (the agent's own role and command line are not taken from the kernel's environment words)",
    async () => {
      // The kernel hands NAME=value words to init's environment: as PID 1 these must change
      // nothing (INETBOOT_ROLE=nbd-daemon made PID 1 exit: a panic; INETBOOT_CMDLINE replaced the line)
      const env = "INETBOOT_ROLE=nbd-daemon INETBOOT_CMDLINE=inetboot.shell";
      await withGuest({ append: `quiet inetboot.root=${guestUrl(serve.url, "squashfs/")} ${env}` }, async (g) => {
        await expectRootBoot(g, roots.squashfs!);
        expect(g.event("root.mounted")?.fstype).toBe("squashfs");
      });
    },
    T,
  );

  test(
    "ext4 store served by nginx, with the seed's httpfuse= name",
    async () => {
      // The command line's JSC option reaches the agent and the daemon (and wins over init's default).
      await withGuest({ append: `quiet httpfuse=${guestUrl(nginx.url, "ext4/")} BUN_JSC_useDFGJIT=1` }, async (g) => {
        await expectRootBoot(g, roots.ext4!, "1");
        expect(g.event("root.mounted")?.fstype).toBe("ext4");
      });
      expect(nginx.lines().some((l) => l.includes("GET /ext4/index"))).toBe(true);
    },
    T,
  );

  test(
    "erofs and iso9660 are detected",
    async () => {
      for (const fs of ["erofs", "iso9660"] as const) {
        await withGuest({ append: `quiet inetboot.root=${guestUrl(serve.url, `${fs}/`)}` }, async (g) => {
          await expectRootBoot(g, roots[fs]!);
          expect(g.event("root.mounted")?.fstype).toBe(fs);
        });
      }
    },
    T,
  );

  test(
    "inetboot.rootpath loop-mounts an image inside the store (the seed's /KNOPPIX/KNOPPIX)",
    async () => {
      await withGuest({ append: `quiet inetboot.root=${guestUrl(serve.url, "knoppix/")} inetboot.rootpath=/KNOPPIX/KNOPPIX` }, async (g) => {
        await expectRootBoot(g, roots.knoppix!);
        expect(g.event("root.mounted")?.rootpath).toBe("/KNOPPIX/KNOPPIX");
      });
    },
    T,
  );

  test(
    "the serving mirror dies mid-boot; the second mirror finishes it without an I/O error",
    async () => {
      const primary = await startServe(www);
      const second = await startServe(www);
      try {
        const append = `inetboot.root=${guestUrl(primary.url, "squashfs/")} inetboot.mirror=${guestUrl(second.url, "squashfs/")}`;
        await withGuest({ append: `quiet ${append}` }, async (g) => {
          await g.waitEvent("nbd.attached");
          expect(await primary.stop()).toBeDefined(); // killed while the root is being read
          await expectRootBoot(g, roots.squashfs!);
        });
      } finally {
        await primary.stop();
        await second.stop();
      }
    },
    T,
  );
});

describe("network root failures end in the rescue shell", () => {
  const cases: [string, string, RegExp][] = [
    ["store unreachable", "inetboot.root=http://10.0.2.2:9/nothing/", /NBD server|refused|unreachable/i],
    ["not a filesystem", `inetboot.root=__SERVE__junk/`, /not a filesystem/],
    ["init missing", `inetboot.root=__SERVE__squashfs/ init=/sbin/no-such-init`, /init=\/sbin\/no-such-init/],
    // a signed manifest's pin (root.sha256) that the served index does not match: not booted
    ["another index than the pinned one", `inetboot.root=__SERVE__squashfs/ inetboot.rootsha256=${"0".repeat(64)}`, /not the index the boot manifest signed \(sha256 [0-9a-f]{16}…, expected 0000000000000000…\)/],
  ];
  for (const [name, append, why] of cases) {
    test(
      name,
      async () => {
        await withGuest({ append: `quiet ${append.replace("__SERVE__", guestUrl(serve.url, ""))}` }, (g) => expectRescueShell(g, why));
      },
      T,
    );
  }
});
