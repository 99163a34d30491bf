// The demo system as Debian installs it on a local disk: the same tree on ext4, an installer-style
// /etc/fstab (root by UUID, errors=remount-ro, fsck pass 1), booted by GRUB with `root=UUID=… ro`
// and Debian's own initramfs for the test kernel (initramfs-tools' defaults: MODULES=most, udev,
// busybox, fsck; what `apt install linux-image-amd64` generates on any Debian machine). The peer a
// Debian user compares a boot from the stick with. Built once with mmdebstrap (about a minute),
// cached under build/demo/ next to the squashfs it comes from.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { DEMO_DIR, DEMO_SUITE, hostAptSources, type DemoRoot } from "../../test/lib/demo-root.ts";
import { KERNEL_DIR as KDIR, kernelVersion } from "../../test/lib/qemu.ts";
import { need, run, sha256Hex } from "../../test/lib/sh.ts";

export interface DebianInstall {
  /** ext4 image of the demo tree (boot it with QEMU's snapshot=on: every boot starts clean) */
  ext4: string;
  /** Debian's initrd.img for build/kernel's kernel */
  initrd: string;
  /** the kernel command line Debian's GRUB would give it (root by UUID, read-only until fstab) */
  cmdline: string;
}

/** What a Debian install has besides the kernel for initramfs-tools to build the initrd it boots. */
const INITRD_PACKAGES = ["initramfs-tools", "zstd", "busybox", "udev", "e2fsprogs"];

export function debianInstall(root: DemoRoot, log: (s: string) => void): DebianInstall {
  need("mmdebstrap", "mmdebstrap");
  need("mkfs.ext4", "e2fsprogs");
  need("unsquashfs", "squashfs-tools");
  const initrd = debianInitrd(log);
  const stem = join(DEMO_DIR, basename(root.squashfs).replace(/\.squashfs$/, ""));
  const ext4 = `${stem}.installed.ext4`;
  // A fixed UUID per image, derived from its source, so the cached image and its fstab agree.
  const h = sha256Hex(new TextEncoder().encode(root.key));
  const uuid = `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
  if (!existsSync(ext4)) {
    log(`debian install: ext4 image of ${basename(root.squashfs)}`);
    const work = mkdtempSync(join(tmpdir(), "inetboot-debinst-"));
    try {
      const tree = join(work, "tree");
      run(["unsquashfs", "-q", "-n", "-d", tree, root.squashfs]);
      writeFileSync(join(tree, "etc/fstab"), `# / was on /dev/vda during installation\nUUID=${uuid} / ext4 errors=remount-ro 0 1\n`);
      const bytes = Number(run(["du", "-sb", tree]).split("\t")[0]);
      const size = Math.ceil((bytes * 1.5 + 256 * 1048576) / 1048576); // room as an installer leaves it
      const tmp = `${ext4}.tmp`;
      rmSync(tmp, { force: true });
      // Inode tables written now: left lazy, the first boots would zero them in the background.
      run(["mkfs.ext4", "-q", "-F", "-U", uuid, "-E", "lazy_itable_init=0,lazy_journal_init=0", "-d", tree, tmp, `${size}M`]);
      renameSync(tmp, ext4);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
  return { ext4, initrd, cmdline: `root=UUID=${uuid} ro` };
}

/** Debian's initrd for build/kernel's kernel, made by initramfs-tools in a throwaway chroot. */
function debianInitrd(log: (s: string) => void): string {
  const pkgFile = join(KDIR, ".package");
  if (!existsSync(pkgFile)) throw new Error(`${pkgFile} missing: run 'make kernel'`);
  const pkg = readFileSync(pkgFile, "utf8").trim();
  const ver = kernelVersion();
  const vmlinuz = readFileSync(join(KDIR, `boot/vmlinuz-${ver}`));
  const out = join(DEMO_DIR, `debian-initrd-${ver}-${sha256Hex(vmlinuz).slice(0, 12)}.img`);
  if (existsSync(out)) return out;
  const work = mkdtempSync(join(tmpdir(), "inetboot-debinitrd-"));
  try {
    const tree = join(work, "tree");
    log(`debian install: mmdebstrap ${DEMO_SUITE} ${pkg} + ${INITRD_PACKAGES.join(",")} for its initrd (about a minute)`);
    run(["mmdebstrap", "--mode=root", "--variant=apt", "--format=directory", `--include=${[pkg, ...INITRD_PACKAGES].join(",")}`, DEMO_SUITE, tree, ...hostAptSources()], {
      inheritStderr: true,
    });
    // The initrd must belong to the very kernel the other boots run: same build, same modules.
    if (!readFileSync(join(tree, `boot/vmlinuz-${ver}`)).equals(vmlinuz))
      throw new Error(`the archive's ${pkg} is another build than ${KDIR}'s: rebuild that (rm -rf ${KDIR}; make kernel)`);
    const made = join(tree, `boot/initrd.img-${ver}`);
    if (!existsSync(made) || statSync(made).size === 0) throw new Error(`mmdebstrap made no ${made}`);
    copyFileSync(made, `${out}.tmp`);
    renameSync(`${out}.tmp`, out);
    return out;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
