// What `inetboot cache verify|prune|stats` do, minus argument parsing: data on stdout, a one-line
// error on stderr and exit 1 when the cache holds bad entries.
import { humanBytes } from "../store/info.ts";
import { sizeOption } from "../cli/size.ts";
import { UserError } from "../sys/errors.ts";
import { pruneCache } from "./prune.ts";
import { cacheStats } from "./stats.ts";
import { verifyCache } from "./verify.ts";
import { progressLine } from "../cli/progress.ts";

const out = (line: string) => process.stdout.write(line + "\n");
const iso = (ms?: number) => (ms === undefined ? "-" : new Date(ms).toISOString());

export async function runCacheStats(dir: string) {
  const s = await cacheStats(dir);
  out(`dir: ${s.dir}`);
  out(`chunks: ${s.chunks}`);
  out(`bytes: ${s.chunkBytes} (${humanBytes(s.chunkBytes)})`);
  out(`kernels/initrds: ${s.payloads} (${humanBytes(s.payloadBytes)})`);
  out(`indexes: ${s.indexes} (${s.indexBytes} bytes)`);
  out(`oldest: ${iso(s.oldestMs)}`);
  out(`newest: ${iso(s.newestMs)}`);
  if (s.tmp) out(`leftover tmp files: ${s.tmp}`);
  if (s.other) out(`other files: ${s.other}`);
}

export async function runCacheVerify(dir: string, a: { fix?: boolean }) {
  const p = progressLine("cache verify");
  const r = await verifyCache(dir, { fix: a.fix, onProgress: (d, t) => p.update(d, t, "chunks") });
  p.end();
  for (const b of r.bad) out(`bad: ${b.path}: ${b.reason}`);
  for (const p of r.deleted) out(`deleted: ${p}`);
  out(`checked: ${r.checked} files, ${r.bad.length} bad${r.scan.tmp.length ? `, ${r.scan.tmp.length} leftover tmp` : ""}`);
  if (r.bad.length && !a.fix) {
    process.stderr.write(`inetboot: cache ${r.scan.dir} has ${r.bad.length} bad entries (--fix deletes them)\n`);
    process.exit(1);
  }
}

export async function runCachePrune(dir: string, a: { maxSize?: string; dryRun?: boolean }) {
  if (!a.maxSize) throw new UserError("cache prune needs --max-size (e.g. 512M)");
  const max = sizeOption("--max-size", a.maxSize);
  const r = await pruneCache(dir, max, { dryRun: a.dryRun });
  for (const c of r.removed) out(`${a.dryRun ? "would remove" : "removed"}: ${c.path}`);
  out(`before: ${r.before} (${humanBytes(r.before)})`);
  out(`after: ${r.after} (${humanBytes(r.after)})`);
  const payloads = r.removed.filter((c) => !c.path.endsWith(".zst")).length;
  out(`removed: ${r.removed.length - payloads} chunks${payloads ? `, ${payloads} kernel/initrd files` : ""}${r.tmpRemoved ? `, ${r.tmpRemoved} tmp files` : ""}`);
  if (r.after > max) process.stderr.write(`inetboot: warning: the cached indexes alone exceed --max-size\n`);
}
