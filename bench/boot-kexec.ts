// Benchmark (not a test): the warm-boot path. Prints the time from `manifest.verified` to
// `kexec.start` (download + verify of the Debian kernel and our initrd), and what the handoff saves
// stage 2: agent.start → net.up with the handoff versus a plain DHCP boot of the same stage 2.
// Run: bun bench/boot-kexec.ts   (needs `make`; QEMU TCG on loopback)
import { copyFileSync, mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUILD, kernelPath, withGuest } from "../test/lib/qemu.ts";
import { run } from "../test/lib/sh.ts";
import { startServe } from "../test/lib/servers.ts";

const BIN = join(BUILD, "inetboot");
const tmp = mkdtempSync(join(tmpdir(), "inetboot-bench-kexec-"));
const www = join(tmp, "www");
mkdirSync(join(www, "boot"), { recursive: true });
const ib = (...a: string[]) => run([BIN, ...a]);
ib("keygen", "--out", join(tmp, "k"));
const initrd = join(tmp, "initrd.zst");
ib("initramfs", "--out", initrd, "--agent", BIN, "--init", join(BUILD, "init"), "--kernel", join(BUILD, "kernel"),
  "--modules", "virtio_net,virtio_pci", "--with-busybox", "--trust", join(tmp, "k.pub"));
copyFileSync(kernelPath(), join(www, "boot/vmlinuz"));
copyFileSync(initrd, join(www, "boot/initrd"));
ib("manifest", "--name", "bench", "--version", "1", "--kernel", join(www, "boot/vmlinuz"), "--initrd", join(www, "boot/initrd"),
  "--cmdline", "console=ttyS0 panic=-1 quiet inetboot.shell", "--out", join(www, "boot/m.json"));
ib("sign", join(www, "boot/m.json"), "--key", join(tmp, "k.key"));
const serve = await startServe(www);
const base = serve.url.replace("127.0.0.1", "10.0.2.2");
const rows: string[] = [];
const runs = Number(process.argv[2] ?? 3);
const verifyToKexec: number[] = [];
const handoffNet: number[] = [];
const dhcpNet: number[] = [];
try {
  for (let i = 0; i < runs; i++) {
    await withGuest({ initrd, append: `quiet inetboot.url=${base}boot/m.json` }, async (g) => {
      const v = await g.waitEvent("manifest.verified");
      const k = await g.waitEvent("kexec.start", 180_000);
      verifyToKexec.push(k.t - v.t);
      const s2 = await g.waitFor((x) => x.events().filter((e) => e.ev === "agent.start")[1], 120_000, "stage 2");
      await g.waitFor((x) => x.events().filter((e) => e.ev === "net.up")[1], 60_000, "stage 2 net.up");
      const up = g.events().filter((e) => e.ev === "net.up")[1]!;
      if (up.via !== "handoff") throw new Error(`stage 2 used ${up.via}`);
      handoffNet.push(up.t - s2.t);
    });
    // The same stage 2 booted directly: its network comes from DHCP.
    await withGuest({ initrd, append: "quiet inetboot.shell" }, async (g) => {
      const s = await g.waitEvent("agent.start");
      const up = await g.waitEvent("net.up");
      dhcpNet.push(up.t - s.t);
    });
  }
} finally {
  await serve.stop();
}
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
const kb = (Bun.file(kernelPath()).size + Bun.file(initrd).size) / 1048576;
rows.push(`payload: kernel + initrd = ${kb.toFixed(1)} MiB over loopback (QEMU user networking, TCG)`);
rows.push(`manifest.verified → kexec.start: median ${med(verifyToKexec).toFixed(2)} s  (runs: ${verifyToKexec.map((x) => x.toFixed(2)).join(", ")})`);
rows.push(`stage 2 agent.start → net.up: handoff ${med(handoffNet).toFixed(3)} s vs DHCP ${med(dhcpNet).toFixed(3)} s → saves ${(med(dhcpNet) - med(handoffNet)).toFixed(3)} s`);
console.log(rows.join("\n"));
