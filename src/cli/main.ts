// The host CLI: one command per file under ./commands, loaded lazily so `--help` stays fast.
import { defineCommand, runMain } from "citty";
import pkg from "../../package.json" with { type: "json" };

const main = defineCommand({
  meta: { name: "inetboot", version: pkg.version, description: "Boot machines over the Internet with nothing but HTTP(S)" },
  subCommands: {
    initramfs: () => import("./commands/initramfs.ts").then((m) => m.default),
    fetch: () => import("./commands/fetch.ts").then((m) => m.default),
    cmdline: () => import("./commands/cmdline.ts").then((m) => m.default),
    pack: () => import("./commands/pack.ts").then((m) => m.default),
    verify: () => import("./commands/verify.ts").then((m) => m.default),
    info: () => import("./commands/info.ts").then((m) => m.default),
    nbd: () => import("./commands/nbd.ts").then((m) => m.default),
    serve: () => import("./commands/serve.ts").then((m) => m.default),
    iso: () => import("./commands/iso.ts").then((m) => m.default),
    usb: () => import("./commands/usb.ts").then((m) => m.default),
    cache: () => import("./commands/cache.ts").then((m) => m.default),
    keygen: () => import("./commands/keygen.ts").then((m) => m.default),
    sign: () => import("./commands/sign.ts").then((m) => m.default),
    manifest: () => import("./commands/manifest.ts").then((m) => m.default),
    profile: () => import("./commands/profile.ts").then((m) => m.default),
  },
});

export async function runCli(_argv0: string) {
  await runMain(main);
}
