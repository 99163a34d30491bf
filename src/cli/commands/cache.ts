// `inetboot cache verify|prune|stats DIR`: host-side care of a persistent block cache
// (a stick's inetboot-cache/ folder, or any dir the disk cache wrote).
import { defineCommand } from "citty";
import { guarded } from "../fail.ts";

const dirArg = { type: "positional", required: true, description: "cache folder (inetboot-cache/, the stick's mount point, or a store dir)" } as const;

const stats = defineCommand({
  meta: { name: "stats", description: "Chunk count, bytes, oldest and newest use" },
  args: { dir: dirArg },
  run: guarded(async (a: { dir: string }) => (await import("../../cache/cli.ts")).runCacheStats(a.dir)),
});

const verify = defineCommand({
  meta: { name: "verify", description: "Check every cached chunk (zstd, sha256 = name) and index; exit 1 on bad ones" },
  args: { dir: dirArg, fix: { type: "boolean", description: "delete bad entries and leftover tmp files" } },
  run: guarded(async (a: { dir: string; fix?: boolean }) => (await import("../../cache/cli.ts")).runCacheVerify(a.dir, { fix: a.fix })),
});

const prune = defineCommand({
  meta: { name: "prune", description: "Evict least recently used chunks until the cache fits --max-size" },
  args: {
    dir: dirArg,
    "max-size": { type: "string", description: "size cap, e.g. 512M or 2G", required: true },
    "dry-run": { type: "boolean", description: "only list what would be removed" },
  },
  run: guarded(async (a: { dir: string; "max-size"?: string; "dry-run"?: boolean }) =>
    (await import("../../cache/cli.ts")).runCachePrune(a.dir, { maxSize: a["max-size"], dryRun: a["dry-run"] }),
  ),
});

export default defineCommand({
  meta: { name: "cache", description: "Inspect, check and trim a persistent block cache (e.g. a stick's inetboot-cache/)" },
  subCommands: { stats, verify, prune },
});
