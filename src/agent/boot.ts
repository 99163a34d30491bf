// Boot sources: a network root (inetboot.root / httpfuse), later manifests and scripts.
import type { BootPlan } from "../boot/cmdline.ts";
import type { NetResult } from "../net/setup.ts";
import { UserError } from "../sys/errors.ts";
import { emit } from "./events.ts";

export async function bootFromPlan(plan: BootPlan, net: NetResult | null): Promise<void> {
  if (plan.root) {
    const { assembleRoot } = await import("../boot/root.ts");
    const { findInit, switchRoot } = await import("../boot/switch-root.ts");
    const root = await assembleRoot(plan, plan.root, net);
    const init = findInit(root.newRoot, plan.init);
    emit("switch_root", { init, root: plan.root }, `switching to ${init}`);
    await Bun.sleep(50); // let the console drain before exec
    switchRoot({
      newRoot: root.newRoot,
      init,
      args: plan.initArgs,
      // The NBD daemon outlives the initramfs: keep its executable and libraries.
      keep: ["/inetboot", "/lib", "/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/etc"],
    });
  }
  const what = plan.url ? "inetboot.url" : "inetboot.script";
  throw new UserError(`${what}: booting this source is not implemented in this build yet`);
}
