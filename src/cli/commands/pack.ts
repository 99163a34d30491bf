import { defineCommand } from "citty";
import { guarded } from "../fail.ts";

export default defineCommand({
  meta: { name: "pack", description: "Pack a disk image into a content-addressed block store (index + zstd chunks)" },
  args: {
    image: { type: "positional", required: true, description: "disk image file, block device, or - for standard input" },
    store: { type: "positional", required: true, description: "store directory (created if missing; chunks/ is shared)" },
    "chunk-size": { type: "string", default: "256K", description: "chunk size, a power of two 64K..4M" },
    name: { type: "string", description: "image name: writes NAME.index instead of index" },
    level: { type: "string", default: "2", description: "zstd level (1 = fastest)" },
  },
  run: guarded(async (args: { image: string; store: string; "chunk-size": string; name?: string; level: string }) => {
    const { runPack } = await import("../../store/cli.ts");
    await runPack(args.image, args.store, { chunkSize: args["chunk-size"], name: args.name, level: args.level });
  }),
});
