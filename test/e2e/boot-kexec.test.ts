// End to end: stage 1 (Debian kernel + our initramfs with a trusted key) fetches a signed manifest,
// shows the menu, downloads and verifies kernel and initrd, kexecs; stage 2 (same kernel, a marker
// on its command line) uses the handoff instead of DHCP and boots the busybox root from the store.
// Then the refusals: each gives an `error` event naming the reason, no kexec, and the shell.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUILD, ROOT, kernelPath, withGuest, type Guest } from "../lib/qemu.ts";
import { buildBusyboxRoot, type BusyboxRoot } from "../lib/roots.ts";
import { run } from "../lib/sh.ts";
import { writeOldChunks } from "../lib/old-chunks.ts";
import { startServe, type ServeProcess } from "../lib/servers.ts";
import { scratch } from "../lib/tmp.ts";

const T = 300_000;
const BIN = join(BUILD, "inetboot");
const tmp = scratch("inetboot-kexec-");
const www = join(tmp, "www");
const initrd = join(tmp, "initrd-trusted.cpio.zst");
const devInitrd = join(tmp, "initrd-allow-unsigned.cpio.zst");
let serve: ServeProcess;
let root: BusyboxRoot;
let base: string; // as the guest sees it

const ib = (...args: string[]) => run([BIN, ...args]);
const MODULES = "virtio_net,virtio_pci,nbd,squashfs,overlay,loop";

function manifest(dir: string, name: string, version: number, extra: string[] = []) {
  // (the root's URL is the guest's view of the host: its index is pinned from the file here)
  const rootSha = new Bun.CryptoHasher("sha256").update(readFileSync(join(www, "root/index"))).digest("hex");
  ib("manifest", "--name", name, "--version", String(version), "--kernel", join(www, "boot/vmlinuz"), "--initrd", join(www, "boot/initrd"),
    "--cmdline", "console=ttyS0 panic=-1 quiet inetboot.stage2", "--root", `${base}/root/`, "--rootfstype", "squashfs", "--root-sha256", rootSha,
    "--entry-name", "busybox", "--title", "Busybox root over NBD", "--out", join(dir, `${name}.json`), ...extra);
}

beforeAll(async () => {
  mkdirSync(join(www, "boot"), { recursive: true });
  ib("keygen", "--out", join(tmp, "release"));
  ib("keygen", "--out", join(tmp, "other"));
  ib("initramfs", "--out", initrd, "--agent", BIN, "--init", join(BUILD, "init"), "--kernel", join(BUILD, "kernel"), "--modules", MODULES,
    "--with-busybox", "--trust", join(tmp, "release.pub"));
  ib("initramfs", "--out", devInitrd, "--agent", BIN, "--init", join(BUILD, "init"), "--kernel", join(BUILD, "kernel"), "--modules", MODULES,
    "--with-busybox", "--allow-unsigned");
  copyFileSync(kernelPath(), join(www, "boot/vmlinuz"));
  copyFileSync(initrd, join(www, "boot/initrd"));
  root = buildBusyboxRoot({ fstype: "squashfs" });
  ib("pack", root.image, join(www, "root"));
  serve = await startServe(www);
  base = serve.url.replace("127.0.0.1", "10.0.2.2").replace(/\/$/, "");
  // The good manifest: two entries, so stage 1 shows its menu.
  manifest(join(www, "boot"), "good", 7);
  ib("manifest", "--add-to", join(www, "boot/good.json"), "--entry-name", "other", "--title", "Other entry", "--kernel", join(www, "boot/vmlinuz"),
    "--cmdline", "console=ttyS0 inetboot.other", "--default");
  ib("sign", join(www, "boot/good.json"), "--key", join(tmp, "release.key"));
  // Refusal fixtures.
  manifest(join(www, "boot"), "wrongkey", 7);
  ib("sign", join(www, "boot/wrongkey.json"), "--key", join(tmp, "other.key"));
  for (const n of ["flipmanifest", "flipsig", "unsigned"]) {
    manifest(join(www, "boot"), n, 7);
    if (n !== "unsigned") ib("sign", join(www, "boot", `${n}.json`), "--key", join(tmp, "release.key"));
  }
  const fm = join(www, "boot/flipmanifest.json");
  writeFileSync(fm, readFileSync(fm, "utf8").replace('"version": 7', '"version": 8'));
  const fs = join(www, "boot/flipsig.sig");
  const sig = readFileSync(fs, "utf8");
  const b64 = sig.match(/[A-Za-z0-9+/]{40,}={0,2}/)![0];
  writeFileSync(fs, sig.replace(b64, (b64[0] === "A" ? "B" : "A") + b64.slice(1)));
  // A kernel one byte off what the (correctly signed) manifest says.
  mkdirSync(join(www, "bad"));
  const k = readFileSync(join(www, "boot/vmlinuz"));
  copyFileSync(join(www, "boot/initrd"), join(www, "bad/initrd"));
  writeFileSync(join(www, "bad/vmlinuz"), k);
  ib("manifest", "--name", "flipkernel", "--version", "7", "--kernel", join(www, "bad/vmlinuz"), "--initrd", join(www, "bad/initrd"),
    "--cmdline", "console=ttyS0", "--out", join(www, "bad/flipkernel.json"));
  ib("sign", join(www, "bad/flipkernel.json"), "--key", join(tmp, "release.key"));
  k[k.length - 100] ^= 0xff;
  writeFileSync(join(www, "bad/vmlinuz"), k);
  // Expired: written by hand (the CLI refuses to make one), signed raw.
  const good = JSON.parse(readFileSync(join(www, "boot/good.json"), "utf8"));
  writeFileSync(join(www, "boot/expired.json"), JSON.stringify({ ...good, name: "expired", expires: "2020-01-01T00:00:00Z" }, null, 2));
  ib("sign", join(www, "boot/expired.json"), "--key", join(tmp, "release.key"), "--raw");
  // Boot scripts: one signed that boots the root, one unsigned.
  const script = `export default async function (api) {\n  api.log("SCRIPT-RAN " + api.net.address);\n  await api.bootRoot("${base}/root/", { fstype: "squashfs" });\n}\n`;
  writeFileSync(join(www, "boot/boot.js"), script);
  ib("sign", join(www, "boot/boot.js"), "--key", join(tmp, "release.key"), "--raw");
  writeFileSync(join(www, "boot/unsigned.js"), script);
}, T);
afterAll(async () => {
  await serve?.stop();
});

function stage1(append: string) {
  return { initrd, append: `quiet ${append}` };
}

test(
  "signed manifest → menu → verified downloads → kexec; stage 2 uses the handoff and boots the root",
  async () => {
    await withGuest(stage1(`inetboot.url=${base}/boot/good.json`), async (g) => {
      const v = await g.waitEvent("manifest.verified");
      expect(v.version).toBe(7);
      await g.waitText(/Boot which entry \[2\]\?/);
      expect(g.output).toContain("Busybox root over NBD");
      g.send("1");
      const k = await g.waitEvent("kexec.start", 180_000);
      expect(k.entry).toBe("busybox");
      expect(g.events().filter((e) => e.ev === "fetch.done").map((e) => e.what).sort()).toEqual(["initrd", "kernel"]);
      // Stage 2: a second agent.start with the entry's command line.
      const s2 = await g.waitFor((x) => x.events().filter((e) => e.ev === "agent.start")[1], 120_000, "stage 2 agent.start");
      expect(String(s2.cmdline)).toContain("inetboot.stage2");
      // the signed root.sha256 went on to stage 2, which booted the root only with that index
      expect(String(s2.cmdline)).toMatch(/ inetboot\.rootsha256=[0-9a-f]{64}\b/);
      await g.waitText(/ROOT-DONE/, 150_000);
      const all = g.events();
      const after = all.slice(all.findIndex((e, i) => e.ev === "agent.start" && i > 0));
      expect(after.some((e) => e.ev === "handoff")).toBe(true);
      expect(after.find((e) => e.ev === "net.up")?.via).toBe("handoff");
      expect(after.some((e) => e.ev.startsWith("dhcp."))).toBe(false);
      expect(g.output).toContain(`BIG-SHA256 ${root.sha256OfBig}`);
      expect(g.output).toContain("OVERLAY-OK");
      expect(await g.exited).toBe(0);
    });
  },
  T,
);

test(
  "with a cache disk capped by inetboot.cachesize: kernel and initrd are kept (old entries evicted first), and the next boot takes them from it",
  async () => {
    // Stage 1 needs the disk and vfat modules for this one; stage 2 is the manifest's own initrd.
    const cacheInitrd = join(tmp, "initrd-cache.cpio.zst");
    ib("initramfs", "--out", cacheInitrd, "--agent", BIN, "--init", join(BUILD, "init"), "--kernel", join(BUILD, "kernel"),
      "--modules", `${MODULES},virtio_blk,vfat,nls_cp437,nls_iso8859_1,nls_utf8,nls_ascii`, "--with-busybox", "--trust", join(tmp, "release.pub"));
    // A 160 MiB FAT disk whose cache holds 60 MiB of another system's chunks, last used a month ago.
    const disk = join(tmp, "cache-disk.img");
    run(["mkfs.vfat", "-C", disk, String(160 * 1024)]);
    const other = join(tmp, "other-cache");
    const old = writeOldChunks(join(other, "inetboot-cache"), 60, 1024 * 1024);
    run(["mcopy", "-s", "-m", "-i", disk, join(other, "inetboot-cache"), "::"]);
    const good = JSON.parse(readFileSync(join(www, "boot/good.json"), "utf8"));
    const busybox = good.entries.find((e: { name: string }) => e.name === "busybox");
    const payloads = [busybox.kernel.sha256, busybox.initrd.sha256] as string[];
    const cap = 100 * 1024 * 1024; // 60 MiB of old chunks + kernel and initrd (~70 MB) do not fit
    expect(60 * 1024 * 1024 + busybox.kernel.size + busybox.initrd.size).toBeGreaterThan(cap);
    const opts = {
      initrd: cacheInitrd,
      append: `quiet inetboot.url=${base}/boot/good.json inetboot.entry=busybox inetboot.cache=/dev/vda inetboot.cachesize=100M`,
      extra: ["-drive", `file=${disk},format=raw,if=virtio`],
    };
    const untilStage2 = (g: Guest) => g.waitFor((x) => x.events().filter((e) => e.ev === "agent.start")[1], 240_000, "stage 2 agent.start");
    await withGuest(opts, async (g) => {
      await g.waitEvent("kexec.start", 240_000);
      const fetched = g.events().filter((e) => e.ev === "fetch.done");
      expect(fetched.map((e) => [e.what, e.cached ?? false]).sort()).toEqual([["initrd", false], ["kernel", false]]);
      expect(Number(g.events().find((e) => e.ev === "cache.evicted")?.count)).toBeGreaterThan(0);
      expect(g.events().some((e) => e.ev === "warning" && /not kept on the cache medium/.test(String(e.message)))).toBe(false);
      await untilStage2(g);
    });
    // On the disk, read by mtools: both payloads, intact, and the folder within the cap.
    const out = join(tmp, "cache-out");
    mkdirSync(out);
    run(["mcopy", "-s", "-n", "-i", disk, "::inetboot-cache", out]);
    for (const sha of payloads) expect(createHash("sha256").update(readFileSync(join(out, "inetboot-cache/files", sha))).digest("hex")).toBe(sha);
    const left = old.filter((n) => existsSync(join(out, "inetboot-cache/chunks", n.slice(0, 2), n))).length;
    expect(left).toBeLessThan(60);
    expect(left).toBeGreaterThan(0); // only what was needed went
    const bytes = (d: string): number =>
      readdirSync(d, { withFileTypes: true }).reduce((n, e) => n + (e.isDirectory() ? bytes(join(d, e.name)) : statSync(join(d, e.name)).size), 0);
    expect(bytes(join(out, "inetboot-cache"))).toBeLessThanOrEqual(cap);
    // The next boot downloads neither.
    await withGuest(opts, async (g) => {
      await g.waitEvent("kexec.start", 240_000);
      const fetched = g.events().filter((e) => e.ev === "fetch.done");
      expect(fetched.map((e) => [e.what, e.cached ?? false]).sort()).toEqual([["initrd", true], ["kernel", true]]);
      await untilStage2(g);
    });
  },
  T,
);

test(
  "a signed boot script runs with the API and boots the root",
  async () => {
    await withGuest(stage1(`iscript=${base}/boot/boot.js`), async (g) => {
      await g.waitEvent("script.verified");
      await g.waitText(/SCRIPT-RAN 10\.0\.2\.15/);
      await g.waitText(/ROOT-DONE/, 150_000);
      expect(g.output).toContain(`BIG-SHA256 ${root.sha256OfBig}`);
    });
  },
  T,
);

test(
  "an --allow-unsigned initramfs runs an unsigned script but says so loudly",
  async () => {
    await withGuest({ initrd: devInitrd, append: `quiet iscript=${base}/boot/unsigned.js` }, async (g) => {
      const w = await g.waitFor((x) => x.events().find((e) => e.ev === "warning" && e.unsigned === true), 120_000, "unsigned warning");
      expect(String(w.message)).toMatch(/UNSIGNED/);
      await g.waitText(/!!! .*UNSIGNED.* !!!/, 30_000); // the human banner, besides the event
      await g.waitText(/ROOT-DONE/, 150_000);
      expect(g.output).toContain(`BIG-SHA256 ${root.sha256OfBig}`);
    });
  },
  T,
);

describe("refusals: no kexec, an error event with the reason, the shell", () => {
  const cases: [string, string, string][] = [
    ["wrong key", "inetboot.url=__/boot/wrongkey.json", "unknown-key"],
    ["one flipped byte in the manifest", "inetboot.url=__/boot/flipmanifest.json", "bad-signature"],
    ["one flipped byte in the signature", "inetboot.url=__/boot/flipsig.json", "bad-signature"],
    ["one flipped byte in the kernel", "inetboot.url=__/bad/flipkernel.json", "hash"],
    ["expired", "inetboot.url=__/boot/expired.json inetboot.entry=busybox", "expired"],
    ["unsigned manifest", "inetboot.url=__/boot/unsigned.json", "no-signature"],
    ["unsigned script", "inetboot.script=__/boot/unsigned.js", "no-signature"],
  ];
  for (const [name, append, reason] of cases) {
    test(
      name,
      async () => {
        await withGuest(stage1(append.replace("__", base)), async (g: Guest) => {
          const err = await g.waitEvent("error", 150_000);
          if (reason === "hash") expect(String(err.message)).toMatch(/sha256 mismatch/);
          else expect(err.reason).toBe(reason);
          await g.waitEvent("shell.ready");
          expect(g.event("kexec.start")).toBeUndefined();
          expect(g.events().filter((e) => e.ev === "agent.start")).toHaveLength(1);
          g.send("poweroff");
          expect(await g.exited).toBe(0);
        });
      },
      T,
    );
  }
});
void ROOT;
