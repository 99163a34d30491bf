import { defineCommand } from "citty";
import { guarded } from "../fail.ts";
import { URL_OPTIONS, useUrlOptions } from "../options.ts";

export default defineCommand({
  meta: { name: "info", description: "Print a store's index summary (size, chunk size, chunks, zero chunks, unique)" },
  args: {
    store: { type: "positional", required: true, description: "store directory, NAME.index file or URL" },
    ...URL_OPTIONS,
  },
  run: guarded(async (args: { store: string; ca?: string; netrc?: string }) => {
    useUrlOptions(args);
    const { runInfo } = await import("../../store/cli.ts");
    await runInfo(args.store);
  }),
});
