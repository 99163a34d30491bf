// Rollback protection state: the highest manifest version seen per manifest name, in one small
// JSON file ({"format":1,"seen":{"NAME":VERSION}}) in a directory the caller picks (the block cache
// on the USB stick survives reboots). Written as tmp + fsync + rename + fsync(dir), so a power cut
// leaves the old or the new file, never a torn one.
import { closeSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { UserError } from "../sys/errors.ts";

export const SEEN_FILE = "manifest-seen.json";

type Seen = Record<string, number>;

/** The record is a few hundred bytes; anything else on the stick is not one (a FIFO would block
 *  PID 1's read forever, a huge file exhaust its memory). */
const MAX_RECORD = 64 * 1024;

function load(dir: string): Seen {
  const path = join(dir, SEEN_FILE);
  let text: string;
  try {
    const st = lstatSync(path);
    if (!st.isFile() || st.size > MAX_RECORD) throw new UserError(`${path} is damaged (not a regular file of at most ${MAX_RECORD} bytes); delete it to forget the versions seen`);
    text = readFileSync(path, "utf8");
  } catch (e) {
    if (e instanceof UserError) throw e;
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return Object.create(null);
    throw new UserError(`cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  // A damaged file is an error, not "nothing seen": forgetting would re-open the rollback window.
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new UserError(`${path} is damaged (not JSON); delete it to forget the versions seen`);
  }
  const d = (doc !== null && typeof doc === "object" ? doc : {}) as { format?: unknown; seen?: unknown };
  const seen = d.seen;
  if (d.format !== 1 || seen === null || typeof seen !== "object" || Array.isArray(seen)) {
    throw new UserError(`${path} is damaged (expected {"format":1,"seen":{…}}); delete it to forget the versions seen`);
  }
  const out: Seen = Object.create(null);
  for (const [k, v] of Object.entries(seen)) {
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) throw new UserError(`${path} is damaged (version of ${JSON.stringify(k)} is not an integer)`);
    out[k] = v;
  }
  return out;
}

/** The highest version recorded for `name`, or undefined if none. */
export function readSeen(dir: string, name: string): number | undefined {
  return load(dir)[name];
}

/** Record `version` for `name` (only ever raises it); returns the value now stored. Creates `dir`. */
export function recordSeen(dir: string, name: string, version: number): number {
  if (!Number.isSafeInteger(version) || version < 0) throw new UserError(`bad manifest version ${version}`);
  mkdirSync(dir, { recursive: true });
  const seen = load(dir);
  const old = seen[name];
  if (old !== undefined && old >= version) return old;
  seen[name] = version;
  const sorted: Seen = {};
  for (const k of Object.keys(seen).sort()) sorted[k] = seen[k]!;
  const data = new TextEncoder().encode(JSON.stringify({ format: 1, seen: sorted }) + "\n");
  const path = join(dir, SEEN_FILE);
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    // exclusive create: whatever sits at the tmp name (a FIFO, a leftover) is not written through
    rmSync(tmp, { force: true });
    const fd = openSync(tmp, "wx", 0o644);
    try {
      let off = 0;
      while (off < data.length) off += writeSync(fd, data, off, data.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {}
    throw new UserError(`cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  // The rename is durable only once the directory is synced (some filesystems refuse fsync on a dir).
  try {
    const dfd = openSync(dir, "r");
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {}
  return version;
}
