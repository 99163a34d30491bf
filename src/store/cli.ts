// What the pack/verify/info commands do, minus argument parsing: data on stdout, progress on
// stderr, bad input as UserError (one line, exit 1 via guarded()).
import { redactUrls } from "../fetch/errors.ts";
import { UserError } from "../sys/errors.ts";
import { onInterrupt } from "../sys/interrupt.ts";
import { IndexError, parseSize } from "./format.ts";
import { progressLine as progress } from "../cli/progress.ts";
import { storeInfo, humanBytes } from "./info.ts";
import { packImage, removePackTemps } from "./pack.ts";
import { verifyStore } from "./verify.ts";

const out = (line: string) => process.stdout.write(line + "\n");
const warn = (line: string) => process.stderr.write(`warning: ${line}\n`);

function intArg(name: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) throw new UserError(`bad --${name} "${text}" (${min}..${max})`);
  return n;
}

export async function runPack(image: string, storeDir: string, a: { chunkSize: string; name?: string; level: string }) {
  let chunkSize: number;
  try {
    chunkSize = parseSize(a.chunkSize);
  } catch (e) {
    throw new UserError((e as IndexError).message);
  }
  const level = intArg("level", a.level, 1, 22);
  const p = progress("pack");
  const t0 = performance.now();
  // Ctrl-C: the chunks already renamed into place are whole and stay (a rerun finds them); the
  // tmp files of chunks still being written go
  const forget = onInterrupt(() => removePackTemps(storeDir));
  let r: Awaited<ReturnType<typeof packImage>>;
  try {
    r = await packImage(image, storeDir, { chunkSize, name: a.name, level, onProgress: (d, t) => p.update(d, t, "bytes") });
  } finally {
    forget();
  }
  p.end();
  const secs = (performance.now() - t0) / 1000;
  out(`index: ${r.indexPath}`);
  out(`image size: ${r.imageSize} (${humanBytes(r.imageSize)})`);
  out(`chunk size: ${r.chunkSize}`);
  out(`chunks: ${r.chunks}`);
  out(`stored: ${r.stored}${r.repaired ? ` (${r.repaired} of them replaced damaged chunk files)` : ""}`);
  out(`deduplicated: ${r.deduplicated}`);
  out(`zero: ${r.zero}`);
  out(`new bytes: ${r.newPlainBytes} -> ${r.newStoredBytes} compressed`);
  out(`compression ratio: ${r.newStoredBytes ? (r.newPlainBytes / r.newStoredBytes).toFixed(2) : "n/a"}`);
  out(`throughput: ${(r.imageSize / 1e6 / secs).toFixed(0)} MB/s`);
  if (r.replacedIndex) warn(`pack: replaced the index that was at ${r.indexPath} (its chunks stay in the store; pack with --name NAME to keep several images)`);
  for (const s of r.stale) warn(`pack: ${s} was made for the replaced index and no longer matches: record and publish it again (docs/prefetch.md)`);
}

export async function runVerify(spec: string, a: { parallel: string }) {
  const parallel = intArg("parallel", a.parallel, 1, 256);
  const p = progress("verify");
  const r = await verifyStore(spec, { parallel, onProgress: (d, t) => p.update(d, t, "chunks") });
  p.end();
  for (const m of r.missing) out(`missing: chunk ${m.at} ${m.hex}`);
  for (const b of r.bad) out(`bad: chunk ${b.at} ${b.hex}: ${b.reason}`);
  out(`checked: ${r.checked} chunks, ${r.missing.length} missing, ${r.bad.length} bad`);
  if (r.missing.length || r.bad.length) {
    process.stderr.write(`inetboot: store ${redactUrls(spec)} has ${r.missing.length} missing and ${r.bad.length} bad chunks\n`);
    process.exit(1);
  }
}

export async function runInfo(spec: string) {
  const i = await storeInfo(spec);
  out(`index: ${redactUrls(i.where)} (${i.indexBytes} bytes)`);
  out(`format: ${i.version}`);
  out(`image size: ${i.imageSize} (${humanBytes(i.imageSize)})`);
  out(`chunk size: ${i.chunkSize} (${humanBytes(i.chunkSize)})`);
  out(`chunks: ${i.chunks}`);
  out(`zero chunks: ${i.zero}`);
  out(`unique chunks: ${i.unique}`);
  if (i.storedBytes !== undefined) out(`stored bytes: ${i.storedBytes} (${humanBytes(i.storedBytes)})`);
}
