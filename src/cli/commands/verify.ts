import { defineCommand } from "citty";
import { guarded } from "../fail.ts";
import { CA_OPTION } from "../options.ts";
import { useCaFile } from "../../fetch/trust.ts";

export default defineCommand({
  meta: { name: "verify", description: "Check every chunk of a store (directory or http(s) URL); exit 1 on bad or missing chunks" },
  args: {
    store: { type: "positional", required: true, description: "store directory, NAME.index file or URL" },
    parallel: { type: "string", default: "8", description: "chunks checked in parallel" },
    ca: CA_OPTION,
  },
  run: guarded(async (args: { store: string; parallel: string; ca?: string }) => {
    useCaFile(args.ca);
    const { runVerify } = await import("../../store/cli.ts");
    await runVerify(args.store, { parallel: args.parallel });
  }),
});
