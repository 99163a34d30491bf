// `inetboot keygen`: an Ed25519 signing key pair for manifests and boot scripts.
import { defineCommand } from "citty";
import { guarded } from "../fail.ts";

export default defineCommand({
  meta: { name: "keygen", description: "Make an Ed25519 signing key pair: NAME.key (secret, mode 0600) and NAME.pub; never overwrites" },
  args: {
    out: { type: "string", required: true, description: "Base name: writes NAME.key and NAME.pub" },
  },
  run: guarded(async (args: { out: string }) => {
    const { runKeygen } = await import("../../manifest/cli.ts");
    runKeygen(args.out);
  }),
});
