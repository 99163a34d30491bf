// `inetboot initramfs`: build the boot initramfs. Output path on stdout, sizes and progress on stderr.
import { defineCommand } from "citty";
import { guarded } from "../fail.ts";
import { UserError } from "../../sys/errors.ts";
import { collectRepeated } from "../options.ts";
import { COMPRESSIONS, DEFAULT_COMPRESSION, type Compression } from "../../initramfs/sink.ts";
import { readNetrcFile } from "../../fetch/netrc.ts";
import { readCaFile } from "../../fetch/trust.ts";

function mib(n: number): string {
  return `${(n / 1048576).toFixed(1)} MiB`;
}

export default defineCommand({
  meta: { name: "initramfs", description: "Build the boot initramfs (newc cpio, lz4): /init, /inetboot, libraries, kernel modules" },
  args: {
    out: { type: "string", description: "Output file", required: true },
    agent: { type: "string", description: "Agent executable installed as /inetboot (default: this executable when compiled, else build/inetboot)" },
    init: { type: "string", description: "Static pre-init installed as /init (default build/init)" },
    kernel: { type: "string", description: "Kernel dir holding lib/modules/VERSION (an unpacked linux-image package)" },
    kver: { type: "string", description: "Kernel version (default: the only one under KERNEL/lib/modules)" },
    modules: { type: "string", description: "Comma-separated kernel modules to include (dependencies are added)" },
    file: { type: "string", description: "Extra file or directory SRC:DEST (repeatable)" },
    trust: { type: "string", description: "Trusted manifest/script signing key KEY.pub (repeatable): /etc/inetboot/trusted/" },
    ca: { type: "string", description: "PEM file of extra CAs the boot trusts for https:// (checked, installed as /etc/inetboot/ca.pem)" },
    netrc: { type: "string", description: "netrc file with the store's user and password, kept off the kernel command line (checked, installed as /etc/inetboot/netrc)" },
    "allow-unsigned": { type: "boolean", description: "Let the agent accept unsigned manifests and scripts" },
    "with-busybox": { type: "boolean", description: "Add /bin/busybox (busybox-static) and /bin/sh" },
    "with-fsck-fat": { type: "boolean", description: "Add /usr/sbin/fsck.fat (dosfstools): repairs a FAT cache stick cut off while written" },
    compress: {
      type: "string",
      description: "lz4 (legacy frame, like lz4 -l -9: the kernel unpacks it ~1.7x faster than zstd), zstd (~11% smaller) or none",
      default: DEFAULT_COMPRESSION,
    },
    level: { type: "string", description: "zstd level 1..19 (default 3); only with --compress zstd (lz4 has a single level)" },
  },
  async run(ctx) {
    await guarded(async (args: typeof ctx.args) => {
      const { buildInitramfs } = await import("../../initramfs/build.ts");
      const compress = (args.compress ?? DEFAULT_COMPRESSION) as Compression;
      if (!COMPRESSIONS.includes(compress)) throw new UserError(`bad --compress ${args.compress}: use ${COMPRESSIONS.join(", ")}`);
      let level: number | undefined;
      if (args.level !== undefined) {
        level = Number(args.level);
        if (!/^\d+$/.test(String(args.level))) throw new UserError(`bad --level ${args.level}: use 1..19`);
      }
      const files = collectRepeated(ctx.rawArgs, "file");
      // checked now: a typo in these would otherwise first show at boot
      if (args.ca) {
        readCaFile(args.ca);
        files.push(`${args.ca}:/etc/inetboot/ca.pem`);
      }
      if (args.netrc) {
        readNetrcFile(args.netrc);
        files.push(`${args.netrc}:/etc/inetboot/netrc`);
      }
      const say = (m: string) => process.stderr.write(`inetboot initramfs: ${m}\n`);
      let lastShown = Date.now();
      const r = await buildInitramfs({
        out: args.out,
        agent: args.agent,
        init: args.init,
        kernel: args.kernel,
        kver: args.kver,
        modules: args.modules ? args.modules.split(",") : [],
        files,
        withBusybox: !!args["with-busybox"],
        withFsckFat: !!args["with-fsck-fat"],
        trust: collectRepeated(ctx.rawArgs, "trust"),
        allowUnsigned: !!args["allow-unsigned"],
        compress,
        level,
        log: say,
        progress: (done, total) => {
          // Only long builds (a large agent at a high level) get progress lines.
          if (Date.now() - lastShown < 2000 || done >= total) return;
          lastShown = Date.now();
          say(`writing… ${Math.floor((100 * done) / total)}% of ${mib(total)}`);
        },
      });
      say(`${r.files} entries, ${mib(r.unpackedBytes)} unpacked, ${mib(r.compressedBytes)} ${compress === "none" ? "uncompressed" : compress} (${r.compressedBytes} bytes)`);
      process.stdout.write(`${r.path}\n`);
    })({ args: ctx.args });
  },
});
