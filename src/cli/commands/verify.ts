import { defineCommand } from "citty";
import { guarded } from "../fail.ts";
import { URL_OPTIONS, useUrlOptions } from "../options.ts";

export default defineCommand({
  meta: { name: "verify", description: "Check every chunk of a store (directory or http(s) URL); exit 1 on bad or missing chunks" },
  args: {
    store: { type: "positional", required: true, description: "store directory, NAME.index file or URL" },
    parallel: { type: "string", default: "8", description: "chunks checked in parallel" },
    ...URL_OPTIONS,
  },
  run: guarded(async (args: { store: string; parallel: string; ca?: string; netrc?: string }) => {
    useUrlOptions(args);
    const { runVerify } = await import("../../store/cli.ts");
    await runVerify(args.store, { parallel: args.parallel });
  }),
});
