// Boot sources: a signed boot script (inetboot.script / iscript), a signed manifest with kexec
// (inetboot.url), a network root (inetboot.root / httpfuse).
import type { BootPlan } from "../boot/cmdline.ts";
import type { NetResult } from "../net/setup.ts";
import type { CacheMedium } from "../boot/cache-medium.ts";
import { rmSync } from "node:fs";
import { emit } from "./events.ts";

/** Where `inetboot initramfs --netrc` puts the store passwords. */
export const NETRC_PATH = "/etc/inetboot/netrc";

export interface BootHooks {
  shell: (reason?: string) => Promise<void>;
  cache: CacheMedium | null;
}

export async function bootRoot(plan: BootPlan, net: NetResult | null, cache: CacheMedium | null): Promise<never> {
  const { assembleRoot } = await import("../boot/root.ts");
  const { findInit, switchRoot } = await import("../boot/switch-root.ts");
  const root = await assembleRoot(plan, plan.root!, net, cache);
  const init = findInit(root.newRoot, plan.init);
  // The NBD daemon read the store passwords at its start; /etc stays (the daemon's DNS and CA
  // files), the passwords must not (the booted system could read them through the daemon's root)
  rmSync(NETRC_PATH, { force: true });
  emit("switch_root", { init, root: plan.root }, `switching to ${init}`);
  await Bun.sleep(50); // let the console drain before exec
  return switchRoot({
    newRoot: root.newRoot,
    init,
    args: plan.initArgs,
    // The NBD daemon outlives the initramfs: keep its executable and libraries.
    keep: ["/inetboot", "/lib", "/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/etc"],
  });
}

export async function bootManifestUrl(plan: BootPlan, net: NetResult | null, cache: CacheMedium | null): Promise<never> {
  const { bootManifest } = await import("../boot/manifest-boot.ts");
  return bootManifest({ plan, net, cache });
}

export async function bootFromPlan(plan: BootPlan, net: NetResult | null, hooks: BootHooks): Promise<void> {
  if (plan.script) {
    const { loadScript, runScript, scriptApi } = await import("../boot/script.ts");
    const path = await loadScript(plan.script);
    await runScript(path, scriptApi(plan, net, {
      bootRoot: (p) => bootRoot(p, net, hooks.cache),
      bootManifest: (p) => bootManifestUrl(p, net, hooks.cache),
      shell: hooks.shell,
    }));
    return hooks.shell("boot script finished without booting");
  }
  if (plan.url) return void (await bootManifestUrl(plan, net, hooks.cache));
  if (plan.root) return void (await bootRoot(plan, net, hooks.cache));
}
