// What the HTTP end-to-end tests (https, netrc, proxy) serve and boot: a web root with a small
// ext4 image as a store and as a raw image, a busybox root for QEMU boots, and an initramfs with
// the agent and extra options (a CA, a netrc) for a network-root boot.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BUILD } from "./qemu.ts";
import { buildBusyboxRoot, type BusyboxRoot } from "./roots.ts";
import { makeExt4Image, ROOT, sha, startNbd } from "./servers.ts";
import { run } from "./sh.ts";

export const BIN = join(ROOT, "build/inetboot");

export interface HttpFixtures {
  /** the web root: store/ (the image packed), disk.img (the same image raw), root/ (the busybox root packed) */
  www: string;
  imgPath: string;
  img: Uint8Array;
  root: BusyboxRoot;
}

/** Stages `dir`/www with the built CLI. */
export function stageWww(dir: string): HttpFixtures {
  const www = join(dir, "www");
  const imgPath = makeExt4Image(dir, 24, ["/usr/bin/qemu-img", "/usr/bin/nbdinfo"]);
  run([BIN, "pack", imgPath, join(www, "store")]);
  run(["cp", imgPath, join(www, "disk.img")]);
  const root = buildBusyboxRoot({ fstype: "squashfs" });
  run([BIN, "pack", root.image, join(www, "root")]);
  return { www, imgPath, img: new Uint8Array(readFileSync(imgPath)), root };
}

/** An initramfs for booting a squashfs root over the network, plus `extra` options of
 *  `inetboot initramfs` (--ca FILE, --netrc FILE). */
export function buildRootInitrd(out: string, ...extra: string[]): string {
  run([BIN, "initramfs", "--out", out, "--agent", BIN, "--init", join(BUILD, "init"), "--kernel", join(BUILD, "kernel"),
    "--modules", "virtio_net,virtio_pci,nbd,squashfs,overlay,loop", "--with-busybox", ...extra]);
  return out;
}

/** `inetboot nbd SOURCE --listen unix:DIR/NAME.sock ...args` (with `env` added to the
 *  environment), then nbdcopy of the whole export into DIR/NAME.img: the copy's SHA-256. The
 *  server is stopped whatever happens. */
export async function nbdcopySha(source: string, dir: string, name: string, args: string[] = [], env?: Record<string, string>): Promise<string> {
  const n = await startNbd(source, ["--listen", `unix:${join(dir, `${name}.sock`)}`, ...args], env);
  try {
    const copy = join(dir, `${name}.img`);
    run(["nbdcopy", n.uri, copy]);
    return sha(readFileSync(copy));
  } finally {
    await n.stop();
  }
}
