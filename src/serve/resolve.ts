// Maps a request path to a regular file under the served root, refusing anything that would escape
// it: ".." segments (also percent-encoded), encoded slashes/backslashes/NULs, and symlinks whose
// target lies outside the root.
import { access, realpath, stat } from "node:fs/promises";
import { constants } from "node:fs";
import { sep } from "node:path";
import type { Stats } from "node:fs";

export type Resolved =
  | { ok: true; path: string; stat: Stats }
  | { ok: false; status: 400 | 403 | 404; why: string };

/** Splits and decodes a URL pathname; null when a segment is unsafe, undefined when undecodable. */
export function safeSegments(pathname: string): string[] | null | undefined {
  const out: string[] = [];
  for (const raw of pathname.split("/")) {
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    if (seg === "" || seg === ".") continue;
    if (seg === ".." || /[/\\\0]/.test(seg)) return null;
    out.push(seg);
  }
  return out;
}

/** `root` must already be a real path (no symlinks), as startServer makes it. */
export async function resolveFile(root: string, pathname: string): Promise<Resolved> {
  const segs = safeSegments(pathname);
  if (segs === undefined) return { ok: false, status: 400, why: "bad percent-encoding" };
  if (segs === null) return { ok: false, status: 403, why: "path escapes the root" };
  if (segs.length === 0) return { ok: false, status: 404, why: "directory" };
  let real: string;
  try {
    real = await realpath(root + sep + segs.join(sep));
  } catch {
    return { ok: false, status: 404, why: "not found" };
  }
  if (!real.startsWith(root.endsWith(sep) ? root : root + sep)) {
    return { ok: false, status: 403, why: "symlink leaves the root" };
  }
  let st: Stats;
  try {
    st = await stat(real);
  } catch {
    return { ok: false, status: 404, why: "not found" };
  }
  if (!st.isFile()) return { ok: false, status: 404, why: st.isDirectory() ? "directory" : "not a regular file" };
  // (else the body would fail only once the response started: a 500 after a logged 200)
  if (!(await access(real, constants.R_OK).then(() => true, () => false))) return { ok: false, status: 403, why: "not readable by the server" };
  return { ok: true, path: real, stat: st };
}
