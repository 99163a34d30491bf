import { defineCommand } from "citty";
import { guarded } from "../fail.ts";
import { CA_OPTION } from "../options.ts";
import { useCaFile } from "../../fetch/trust.ts";

export default defineCommand({
  meta: { name: "info", description: "Print a store's index summary (size, chunk size, chunks, zero chunks, unique)" },
  args: {
    store: { type: "positional", required: true, description: "store directory, NAME.index file or URL" },
    ca: CA_OPTION,
  },
  run: guarded(async (args: { store: string; ca?: string }) => {
    useCaFile(args.ca);
    const { runInfo } = await import("../../store/cli.ts");
    await runInfo(args.store);
  }),
});
