// Boot sources beyond the network foundation (manifest + kexec, NBD root, boot scripts) land here.
import type { BootPlan } from "../boot/cmdline.ts";
import { UserError } from "../sys/errors.ts";

export async function bootFromPlan(plan: BootPlan): Promise<void> {
  const what = plan.url ? "inetboot.url" : plan.root ? "inetboot.root" : "inetboot.script";
  throw new UserError(`${what}: booting this source is not implemented in this build yet`);
}
