// The demo's root: a small real Debian (bookworm, systemd) built with mmdebstrap from the host's own
// apt sources, customised to show it booted (a marker unit on the serial console, autologin on
// ttyS0), packed as a zstd squashfs. mmdebstrap takes minutes, so the result is cached under
// build/demo/ keyed by a hash of the recipe below: edit the recipe and the next run rebuilds.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { BUILD } from "./qemu.ts";
import { need, run, sha256Hex } from "./sh.ts";

export const DEMO_DIR = join(BUILD, "demo");
export const DEMO_SUITE = "bookworm";
export const DEMO_MARKER = "INETBOOT-DEMO-MARKER";
export const DEMO_HOSTNAME = "inetboot-demo";
/** Password of root on other consoles; ttyS0 logs in by itself. */
export const DEMO_ROOT_PASSWORD = "inetboot";

/** Packages the demo relies on (an init, device manager, module loader, a few tools to look around); the standard root has them all anyway. */
export const DEMO_PACKAGES = ["systemd-sysv", "udev", "kmod", "iproute2", "procps", "less"];

// Docs, man pages and translations: most of a minbase's bytes. Only the small root leaves them out.
const DPKG_EXCLUDES = [
  "path-exclude=/usr/share/man/*",
  "path-exclude=/usr/share/doc/*",
  "path-include=/usr/share/doc/*/copyright",
  "path-exclude=/usr/share/info/*",
  "path-exclude=/usr/share/locale/*",
  "path-include=/usr/share/locale/locale.alias",
  "path-exclude=/usr/share/lintian/*",
];

/**
 * Which Debian the demo boots (`INETBOOT_DEMO_ROOT`):
 * - `standard` (default): Debian as its installer leaves a machine with "standard system utilities"
 *   (priorities required, important and standard: 262 packages, docs and man pages included, about
 *   125 MiB as squashfs): a real system, most of which a boot never reads.
 * - `small`: minbase plus DEMO_PACKAGES without docs, man pages and translations (about 47 MiB),
 *   the demo of the first sessions; its boot reads a quarter of it (bench/README.md).
 */
export const DEMO_ROOTS = {
  standard: { variant: "standard", dpkg: [] as string[] },
  small: { variant: "minbase", dpkg: DPKG_EXCLUDES },
};
export type DemoRootKind = keyof typeof DEMO_ROOTS;

export function demoRootKind(env = process.env): DemoRootKind {
  const k = env.INETBOOT_DEMO_ROOT ?? "standard";
  if (!(k in DEMO_ROOTS)) throw new Error(`INETBOOT_DEMO_ROOT=${k}: want one of ${Object.keys(DEMO_ROOTS).join(", ")}`);
  return k as DemoRootKind;
}

/** Files laid over the tree (path → [mode, content]). */
export function demoOverlayFiles(): Record<string, [number, string]> {
  return {
    "etc/hostname": [0o644, `${DEMO_HOSTNAME}\n`],
    "etc/hosts": [0o644, `127.0.0.1\tlocalhost\n127.0.1.1\t${DEMO_HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n`],
    // The root is whatever inetboot mounted (an overlay): nothing to mount, nothing to check.
    "etc/fstab": [0o644, "# inetboot: the root is mounted by the boot agent; nothing else to mount\n"],
    "etc/systemd/system/inetboot-marker.service": [
      0o644,
      [
        "[Unit]",
        "Description=Tell the console that the inetboot demo root is up",
        "After=local-fs.target",
        "",
        "[Service]",
        "Type=oneshot",
        "RemainAfterExit=yes",
        "ExecStart=/usr/local/sbin/inetboot-marker",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
      ].join("\n"),
    ],
    // /dev/console is the serial port (console=ttyS0): the harness reads the marker there.
    "usr/local/sbin/inetboot-marker": [
      0o755,
      [
        "#!/bin/sh",
        `echo "${DEMO_MARKER} host=$(cat /proc/sys/kernel/hostname) root=$(findmnt -n -o SOURCE,FSTYPE /) uptime=$(cut -d' ' -f1 /proc/uptime)" > /dev/console`,
        "",
      ].join("\n"),
    ],
    // Log straight in on the serial console so `make demo --interactive` lands in a shell.
    "etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf": [
      0o644,
      "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 %I $TERM\n",
    ],
    "etc/motd": [0o644, "\nThis Debian root was fetched block by block over HTTP by inetboot.\nPower off with: poweroff\n\n"],
  };
}

/** Hooks run by mmdebstrap on the host with "$1" = the new root (root mode, so chroot works). */
function customizeHooks(overlayDir: string): string[] {
  return [
    `cp -a ${overlayDir}/. "$1/"`,
    `echo 'root:${DEMO_ROOT_PASSWORD}' | chroot "$1" chpasswd`,
    `chroot "$1" systemctl enable inetboot-marker.service serial-getty@ttyS0.service`,
    // A fresh machine-id on every boot (systemd makes one in /run when the file is empty).
    `: > "$1/etc/machine-id"`,
    `rm -f "$1/var/lib/dbus/machine-id"`,
  ];
}

/** The recipe: everything that changes the image. Its hash names the cached squashfs. */
export function demoRecipe(kind = demoRootKind()) {
  return {
    v: 1,
    suite: DEMO_SUITE,
    variant: DEMO_ROOTS[kind].variant,
    packages: DEMO_PACKAGES,
    dpkg: DEMO_ROOTS[kind].dpkg,
    files: demoOverlayFiles(),
    hooks: customizeHooks("OVERLAY"),
    squashfs: ["-comp", "zstd", "-noappend", "-no-xattrs"],
  };
}

export function demoKey(): string {
  return sha256Hex(JSON.stringify(demoRecipe())).slice(0, 16);
}

interface AptSource {
  uri: string;
  suites: string[];
  components: string[];
  signedBy?: string;
}

/** Reads the host's Debian apt sources (one-line and deb822): the only way this host reaches a mirror. */
export function hostAptSources(suite = DEMO_SUITE): string[] {
  const files: string[] = [];
  if (existsSync("/etc/apt/sources.list")) files.push("/etc/apt/sources.list");
  const d = "/etc/apt/sources.list.d";
  if (existsSync(d))
    for (const f of readdirSync(d).sort()) if (f.endsWith(".list") || f.endsWith(".sources")) files.push(join(d, f));
  const out: AptSource[] = [];
  for (const f of files) {
    const text = readFileSync(f, "utf8");
    if (f.endsWith(".sources")) {
      for (const para of text.split(/\n\s*\n/)) {
        const fields: Record<string, string> = {};
        for (const line of para.split("\n")) {
          const m = line.match(/^([A-Za-z-]+):\s*(.*)$/);
          if (m) fields[m[1]!.toLowerCase()] = m[2]!.trim();
        }
        if (!(fields.types ?? "").split(/\s+/).includes("deb") || (fields.enabled ?? "yes") === "no") continue;
        for (const uri of (fields.uris ?? "").split(/\s+/).filter(Boolean))
          out.push({ uri, suites: (fields.suites ?? "").split(/\s+/), components: (fields.components ?? "main").split(/\s+/), signedBy: fields["signed-by"] });
      }
    } else {
      for (const raw of text.split("\n")) {
        const line = raw.replace(/#.*/, "").trim();
        const m = line.match(/^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/);
        if (!m) continue;
        const signedBy = m[1]?.match(/signed-by=(\S+)/)?.[1];
        out.push({ uri: m[2]!, suites: [m[3]!], components: m[4]!.split(/\s+/).filter(Boolean), signedBy });
      }
    }
  }
  // Only the suite's own repositories (bookworm, bookworm-updates, bookworm-security), main only:
  // the demo needs nothing from contrib/non-free, and third-party repositories are not Debian.
  const lines: string[] = [];
  for (const s of out)
    for (const su of s.suites) {
      if (su !== suite && !su.startsWith(`${suite}-`)) continue;
      if (su.endsWith("-backports") || !s.components.includes("main")) continue;
      const opt = s.signedBy && existsSync(s.signedBy) ? `[signed-by=${s.signedBy}] ` : "";
      lines.push(`deb ${opt}${s.uri} ${su} main`);
    }
  if (!lines.some((l) => l.includes(` ${suite} main`)))
    throw new Error(`no apt source for ${suite} main in /etc/apt/sources.list(.d): the demo root needs a Debian mirror`);
  return [...new Set(lines)];
}

/**
 * The demo store's chunk size: 64 KiB rather than pack's 256 KiB default. The demo boot reads a
 * quarter of this small squashfs, scattered over it, and whole 256 KiB chunks made it fetch 42% of
 * the image; 64 KiB chunks fetch 28%, close to the 26-27% the boot itself reads, at the same boot
 * time with a profile and ~0.5 s more without one over a 40 ms link (bench/README.md, boot-shaped).
 */
export const DEMO_CHUNK_SIZE = "64K";
export const DEMO_STORE = join(DEMO_DIR, "store");

/**
 * Packs the demo squashfs into build/demo/store/ unless it already holds exactly this build at
 * DEMO_CHUNK_SIZE. A store of another build or chunk size is removed first: its chunks would only
 * pile up beside the new ones. Returns whether it packed.
 */
export function packDemoStore(root: DemoRoot, inetboot: string, log: (s: string) => void): boolean {
  const stamp = join(DEMO_STORE, ".packed-from");
  const want = `${root.key} chunk-size=${DEMO_CHUNK_SIZE}`;
  if (existsSync(join(DEMO_STORE, "index")) && existsSync(stamp) && readFileSync(stamp, "utf8").trim() === want) return false;
  log(`packing ${root.squashfs} into ${DEMO_STORE} (${DEMO_CHUNK_SIZE} chunks)`);
  rmSync(DEMO_STORE, { recursive: true, force: true });
  run([inetboot, "pack", "--chunk-size", DEMO_CHUNK_SIZE, root.squashfs, DEMO_STORE], { inheritStderr: true });
  writeFileSync(stamp, want + "\n");
  return true;
}

export interface DemoRoot {
  squashfs: string;
  key: string;
  cached: boolean;
  bytes: number;
}

/** Builds (or finds in the cache) the demo squashfs. Needs root, mmdebstrap and mksquashfs. */
export function buildDemoRoot(opts: { log?: (s: string) => void; force?: boolean } = {}): DemoRoot {
  const log = opts.log ?? ((s: string) => process.stderr.write(s + "\n"));
  const key = demoKey();
  const squashfs = join(DEMO_DIR, `debian-${DEMO_SUITE}-${key}.squashfs`);
  const latest = join(DEMO_DIR, "root.squashfs");
  if (!opts.force && existsSync(squashfs)) {
    relink(latest, squashfs);
    return { squashfs, key, cached: true, bytes: statSync(squashfs).size };
  }
  need("mmdebstrap", "mmdebstrap");
  need("mksquashfs", "squashfs-tools");
  if (process.getuid?.() !== 0) throw new Error("building the demo root needs root (mmdebstrap --mode=root)");
  const work = join(DEMO_DIR, `work-${key}`);
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const overlay = join(work, "overlay");
  for (const [rel, [mode, content]] of Object.entries(demoOverlayFiles())) {
    const p = join(overlay, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, content, { mode });
  }
  const tree = join(work, "tree");
  const sources = hostAptSources();
  const t0 = Date.now();
  const recipe = demoRecipe();
  log(`demo root: mmdebstrap ${DEMO_SUITE} ${recipe.variant} + ${DEMO_PACKAGES.join(",")} from ${sources.length} host apt source(s) (a few minutes)`);
  run(
    [
      "mmdebstrap",
      "--mode=root",
      `--variant=${recipe.variant}`,
      "--format=directory",
      `--include=${DEMO_PACKAGES.join(",")}`,
      ...recipe.dpkg.map((o) => `--dpkgopt=${o}`),
      ...customizeHooks(overlay).map((h) => `--customize-hook=${h}`),
      DEMO_SUITE,
      tree,
      ...sources,
    ],
    { inheritStderr: true },
  );
  log(`demo root: mmdebstrap done in ${((Date.now() - t0) / 1000).toFixed(0)} s; mksquashfs`);
  const tmp = `${squashfs}.tmp`;
  rmSync(tmp, { force: true });
  run(["mksquashfs", tree, tmp, ...recipe.squashfs, "-quiet"]);
  renameSync(tmp, squashfs);
  rmSync(work, { recursive: true, force: true });
  relink(latest, squashfs);
  const bytes = statSync(squashfs).size;
  log(`demo root: ${squashfs} (${(bytes / 1048576).toFixed(1)} MiB) in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return { squashfs, key, cached: false, bytes };
}

function relink(link: string, target: string) {
  rmSync(link, { force: true });
  symlinkSync(target.slice(dirname(link).length + 1), link);
}

if (import.meta.main) {
  const r = buildDemoRoot({ force: process.argv.includes("--force") });
  process.stdout.write(`${r.squashfs}\n`);
}

/**
 * Host-side check of a built demo squashfs (unsquashfs listing and file reads, nothing executed):
 * returns the problems found, empty when the image has what the demo relies on.
 */
export function checkDemoImage(squashfs: string): string[] {
  need("unsquashfs", "squashfs-tools");
  const listing = run(["unsquashfs", "-lls", "-d", "", squashfs]);
  const entries = new Map<string, string>();
  for (const line of listing.split("\n")) {
    // "-rwxr-xr-x root/root  1234 2024-01-01 00:00 /path" or "lrwxrwxrwx ... /path -> target"
    const m = line.match(/^([-dlcbps][-rwxsStT]{9})\s+\S+\s+\S+\s+\S+\s+\S+\s+(\/\S*)(?: -> (\S+))?$/);
    if (m) entries.set(m[2]!, `${m[1]}${m[3] ? ` -> ${m[3]}` : ""}`);
  }
  const problems: string[] = [];
  const want = (path: string, re: RegExp) => {
    const e = entries.get(path);
    if (!e) problems.push(`missing ${path}`);
    else if (!re.test(e)) problems.push(`${path}: ${e} (want ${re})`);
  };
  const cat = (path: string) => run(["unsquashfs", "-cat", squashfs, path.slice(1)]);
  // bookworm is merged-/usr: /sbin is a link to usr/sbin, where init points at systemd.
  want("/sbin", /^l.* -> usr\/sbin$/);
  want("/usr/sbin/init", /^l.* -> .*systemd$/);
  want("/etc/systemd/system/inetboot-marker.service", /^-rw-r--r--/);
  want("/usr/local/sbin/inetboot-marker", /^-rwxr-xr-x/);
  want("/etc/systemd/system/multi-user.target.wants/inetboot-marker.service", /^l.* -> \/etc\/systemd\/system\/inetboot-marker.service$/);
  want("/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service", /^l/);
  want("/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf", /^-rw-r--r--/);
  want("/usr/bin/systemctl", /^-rwxr-xr-x/);
  want("/usr/sbin/agetty", /^-rwxr-xr-x/);
  if (problems.length) return problems;
  if (cat("/etc/hostname").trim() !== DEMO_HOSTNAME) problems.push("/etc/hostname is not " + DEMO_HOSTNAME);
  if (!cat("/usr/local/sbin/inetboot-marker").includes(DEMO_MARKER)) problems.push("marker script does not print the marker");
  if (!cat("/etc/systemd/system/serial-getty@ttyS0.service.d/autologin.conf").includes("--autologin root"))
    problems.push("no autologin on ttyS0");
  if (/^\s*[^#\s]/m.test(cat("/etc/fstab"))) problems.push("/etc/fstab is not empty");
  if (!/^root:[^:!*]+:/m.test(cat("/etc/shadow"))) problems.push("root has no password");
  return problems;
}
