// `inetboot sign`: a detached signature (FILE.sig) over a manifest's (or a boot script's) exact bytes.
import { defineCommand } from "citty";
import { guarded } from "../fail.ts";

export default defineCommand({
  meta: { name: "sign", description: "Sign a manifest (validated first) or, with --raw, any file; writes MANIFEST.sig beside MANIFEST.json" },
  args: {
    file: { type: "positional", required: true, description: "MANIFEST.json (or a boot script with --raw)" },
    key: { type: "string", required: true, description: "Private key file NAME.key (from inetboot keygen)" },
    out: { type: "string", description: "Signature file (default: X.json → X.sig, other files → FILE.sig)" },
    append: { type: "boolean", description: "Add to an existing signature file (key rotation) instead of replacing it" },
    raw: { type: "boolean", description: "Sign any file, e.g. a boot script (no manifest validation)" },
  },
  run: guarded(async (args: { file: string; key: string; out?: string; append?: boolean; raw?: boolean }) => {
    const { runSign } = await import("../../manifest/cli.ts");
    await runSign(args.file, { key: args.key, out: args.out, append: !!args.append, raw: !!args.raw });
  }),
});
