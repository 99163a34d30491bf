// switch_root: move the API filesystems into the new root, free the initramfs, make the new root
// "/" and exec its init. Checks that init exists before anything is torn down, so a failure
// still leaves a working rescue shell.
import { existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, rmSync, statSync } from "node:fs";
import { join, posix } from "node:path";
import { chroot, execve, mount, MS } from "../sys/ffi.ts";
import { UserError } from "../sys/errors.ts";

/** Resolves `path` inside `root` following symlinks as the new root would see them. */
export function resolveIn(root: string, path: string, depth = 0): string | null {
  if (depth > 40) return null;
  const parts = posix.normalize(path).split("/").filter(Boolean);
  let cur = "/";
  for (let i = 0; i < parts.length; i++) {
    const next = posix.join(cur, parts[i]!);
    const host = join(root, next);
    let st;
    try {
      st = lstatSync(host);
    } catch {
      return null;
    }
    if (st.isSymbolicLink()) {
      const target = readlinkSync(host);
      const abs = target.startsWith("/") ? target : posix.join(cur, target);
      const rest = parts.slice(i + 1).join("/");
      return resolveIn(root, rest ? posix.join(abs, rest) : abs, depth + 1);
    }
    cur = next;
  }
  return cur;
}

export function findInit(newRoot: string, wanted?: string): string {
  const candidates = wanted ? [wanted] : ["/sbin/init", "/etc/init", "/bin/init", "/lib/systemd/systemd", "/bin/sh"];
  for (const c of candidates) {
    const r = resolveIn(newRoot, c);
    if (r) {
      const st = statSync(join(newRoot, r));
      if (st.isFile() && st.mode & 0o111) return c;
    }
  }
  throw new UserError(wanted ? `init=${wanted}: not an executable in the new root` : `no init in the new root (tried ${candidates.join(", ")})`);
}

/** Deletes the initramfs' files (not crossing mounts) except what `keep` names; frees RAM. */
export function freeInitramfs(keep: Set<string>, newRoot: string) {
  const rootDev = statSync("/").dev;
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = posix.join(dir, name);
      if (p === newRoot || keep.has(p)) continue;
      let st;
      try {
        st = lstatSync(p);
      } catch {
        continue;
      }
      if (st.dev !== rootDev) continue; // a mount point
      if (st.isDirectory()) {
        walk(p);
        continue;
      }
      try {
        rmSync(p);
      } catch {
        /* best effort */
      }
    }
  };
  walk("/");
}

export interface SwitchOptions {
  newRoot: string;
  init: string;
  args: string[];
  /** Paths of the initramfs to keep for daemons that outlive it (the NBD server). */
  keep?: string[];
  beforeExec?: () => void;
}

export function switchRoot(o: SwitchOptions): never {
  for (const fs of ["/dev", "/proc", "/sys", "/run"]) {
    const dst = join(o.newRoot, fs);
    if (!existsSync(dst)) mkdirSync(dst, { recursive: true });
    mount(fs, dst, null, MS.MOVE);
  }
  freeInitramfs(new Set(o.keep ?? []), o.newRoot);
  process.chdir(o.newRoot);
  mount(o.newRoot, "/", null, MS.MOVE);
  chroot(".");
  process.chdir("/");
  o.beforeExec?.();
  const env = ["HOME=/", "TERM=linux", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"];
  return execve(o.init, [o.init, ...o.args], env);
}
