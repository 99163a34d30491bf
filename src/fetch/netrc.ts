// Credentials for HTTP Basic authentication from a netrc file (`machine HOST login USER password
// PASS`, as curl, wget and ftp read it), so that a password need not be in a URL: in a boot the
// URL is on the kernel command line, which every process of the booted system can read in
// /proc/cmdline, while /etc/inetboot/netrc lives in the initramfs, which switch_root frees.
//
// `--netrc FILE` on the command line, or INETBOOT_NETRC (the agent sets it to the initramfs'
// /etc/inetboot/netrc; the NBD daemon inherits it and reads the file before switch_root). Applied
// to each request's URL at the moment it is sent, so messages and logs never carry the password.
import { readFileSync } from "node:fs";
import { readFailure, UserError } from "../sys/errors.ts";

export interface NetrcEntry {
  /** lower-case host name; null for `default` (any host) */
  machine: string | null;
  login: string;
  password: string;
}

/** Splits netrc text into tokens: whitespace-separated, or "double quoted" with \-escapes. */
function tokens(text: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === "#") {
      while (i < text.length && text[i] !== "\n") i++; // a comment, to the end of the line (as curl: quote a password that starts with #)
    } else if (c === '"') {
      let t = "";
      for (i++; i < text.length && text[i] !== '"'; i++) t += text[i] === "\\" && i + 1 < text.length ? text[++i] : text[i];
      if (i >= text.length) throw new Error("a quoted word is not closed");
      i++;
      out.push(t);
    } else {
      let t = "";
      while (i < text.length && !/\s/.test(text[i]!)) t += text[i++];
      // macdef's body runs to the next empty line: skipped whole (we run no macros)
      if (t === "macdef") {
        const end = text.indexOf("\n\n", i);
        i = end < 0 ? text.length : end + 2;
        continue;
      }
      out.push(t);
    }
  }
  return out;
}

/** The entries of a netrc file. Entries without a login are left out (nothing to send). Throws
 *  Error with what is wrong (the caller names the file). */
export function parseNetrc(text: string): NetrcEntry[] {
  const t = tokens(text);
  const out: NetrcEntry[] = [];
  let cur: { machine: string | null; login?: string; password?: string } | null = null;
  const close = () => {
    if (cur?.login !== undefined) out.push({ machine: cur.machine, login: cur.login, password: cur.password ?? "" });
  };
  for (let i = 0; i < t.length; i++) {
    const word = t[i]!;
    const value = () => {
      const v = t[++i];
      if (v === undefined) throw new Error(`"${word}" has no value`);
      return v;
    };
    if (word === "machine") {
      close();
      cur = { machine: value().toLowerCase() };
    } else if (word === "default") {
      close();
      cur = { machine: null };
    } else if (word === "login" || word === "password" || word === "account") {
      if (!cur) throw new Error(`"${word}" before any "machine"`);
      const v = value();
      if (word === "login") cur.login = v;
      else if (word === "password") cur.password = v;
    } else {
      throw new Error(`unknown word "${word}" (expected machine, default, login, password, account or macdef)`);
    }
  }
  close();
  return out;
}

/** The entries of a netrc file; a one-line UserError naming the file and what is wrong. */
export function readNetrcFile(file: string): NetrcEntry[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new UserError(`netrc file ${file}: ${readFailure(e)}`);
  }
  try {
    return parseNetrc(text);
  } catch (e) {
    throw new UserError(`netrc file ${file}: ${(e as Error).message}`);
  }
}

/** The URL with the netrc's user and password for its host put in, when it has none of its own
 *  (a URL's own credentials win, as in curl). The first matching `machine` wins, then `default`. */
export function withNetrc(url: string, entries: NetrcEntry[]): string {
  if (entries.length === 0) return url;
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return url;
  }
  if (u.username || u.password || (u.protocol !== "http:" && u.protocol !== "https:")) return url;
  const host = u.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  const e = entries.find((x) => x.machine === host) ?? entries.find((x) => x.machine === null);
  if (!e) return url;
  u.username = encodeURIComponent(e.login);
  u.password = encodeURIComponent(e.password);
  return u.toString();
}

let chosen: string | undefined;
let loaded: { file: string; entries: NetrcEntry[] } | null = null;

/** `--netrc FILE`: use its credentials from now on, in this process. Read at once, so a bad file
 *  is an error before any request is made. */
export function useNetrcFile(file: string | undefined): void {
  if (file === undefined || file === "") return;
  loaded = { file, entries: readNetrcFile(file) };
  chosen = file;
}

/** The URL to send: with the chosen netrc's credentials for its host, if any (see withNetrc). */
export function authorize(url: string, file: string | undefined = chosen ?? (process.env.INETBOOT_NETRC || undefined)): string {
  if (file === undefined) return url;
  if (loaded?.file !== file) loaded = { file, entries: readNetrcFile(file) };
  return withNetrc(url, loaded.entries);
}

/** Where the credentials for this URL would come from, for a 401's message: null when none. */
export function netrcFileFor(url: string): string | null {
  const file = chosen ?? (process.env.INETBOOT_NETRC || undefined);
  return file !== undefined && authorize(url, file) !== url ? file : null;
}
