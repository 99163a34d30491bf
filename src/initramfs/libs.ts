// Shared-library closure of an executable, and copying host paths into the archive at the same
// place as on the host, symlinks included (so /lib64/ld-linux-x86-64.so.2 and merged-/usr links
// like /lib -> usr/lib resolve inside the initramfs exactly as they do on the host).
import { existsSync, lstatSync, readlinkSync, statSync } from "node:fs";
import { posix } from "node:path";
import { isElfFile, parseElf, withFileReader, type ElfInfo } from "./elf.ts";
import type { ArchiveTree } from "./tree.ts";

/** Where glibc's ld.so looks by default on Debian amd64 (ld.so.cache is not consulted). */
export const DEFAULT_LIB_DIRS = ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"];

export function readElf(path: string): ElfInfo {
  return withFileReader(path, (read) => parseElf(read, path));
}

/** ELF64 of the wanted machine? (skips e.g. 32-bit libraries of the same name) */
function fits(path: string, machine: number): boolean {
  try {
    if (!existsSync(path) || !statSync(path).isFile() || !isElfFile(path)) return false;
    return readElf(path).machine === machine;
  } catch {
    return false;
  }
}

/**
 * Interpreter + every DT_NEEDED library, recursively, as host paths the way the dynamic linker
 * would find them (not symlink-resolved). Empty for a static executable. Sorted.
 */
export function sharedLibClosure(exe: string, libDirs: string[] = DEFAULT_LIB_DIRS): string[] {
  const top = readElf(exe);
  const found = new Set<string>();
  const queue: Array<{ path: string; info: ElfInfo }> = [{ path: exe, info: top }];
  if (top.interp) {
    if (!existsSync(top.interp)) throw new Error(`${exe}: program interpreter ${top.interp} not found`);
    found.add(top.interp);
  }
  const seen = new Set<string>();
  while (queue.length) {
    const { path, info } = queue.shift()!;
    const origin = posix.dirname(realpathOf(path));
    const expand = (d: string) => d.replace(/\$(ORIGIN|\{ORIGIN\})/g, origin);
    // DT_RPATH counts only when there is no DT_RUNPATH; the executable's RPATH also applies to its libraries.
    const rpath = info.runpath.length ? [] : [...info.rpath, ...(path === exe ? [] : top.runpath.length ? [] : top.rpath)];
    const dirs = [...rpath, ...info.runpath, ...libDirs].map(expand);
    for (const name of info.needed) {
      let hit: string | undefined;
      if (name.includes("/")) hit = fits(name, top.machine) ? name : undefined;
      else hit = dirs.map((d) => posix.join(d, name)).find((p) => fits(p, top.machine));
      if (!hit) throw new Error(`${path}: shared library ${name} not found in ${dirs.join(":")}`);
      if (found.has(hit)) continue;
      found.add(hit);
      const real = realpathOf(hit);
      if (seen.has(real)) continue;
      seen.add(real);
      queue.push({ path: hit, info: readElf(hit) });
    }
  }
  return [...found].sort();
}

function realpathOf(p: string): string {
  const chain = hostPathChain(p);
  return chain[chain.length - 1]!.path;
}

export type ChainLink = { path: string; kind: "symlink"; target: string } | { path: string; kind: "file" | "dir" };

/**
 * Every symlink met while resolving an absolute host path, then the real object it ends at.
 * E.g. /lib64/ld-linux-x86-64.so.2 on merged /usr: /lib64 -> usr/lib64,
 * /usr/lib64/ld-linux-x86-64.so.2 -> ../lib/x86_64-linux-gnu/..., then the file.
 */
export function hostPathChain(path: string): ChainLink[] {
  if (!path.startsWith("/")) throw new Error(`not an absolute path: ${path}`);
  const links: ChainLink[] = [];
  let pending = path.split("/").filter(Boolean);
  const cur: string[] = [];
  let hops = 0;
  while (pending.length) {
    const c = pending.shift()!;
    if (c === ".") continue;
    if (c === "..") {
      cur.pop();
      continue;
    }
    const here = "/" + [...cur, c].join("/");
    const st = lstatSync(here);
    if (st.isSymbolicLink()) {
      if (++hops > 40) throw new Error(`${path}: too many levels of symbolic links`);
      const target = readlinkSync(here);
      links.push({ path: here, kind: "symlink", target });
      if (target.startsWith("/")) cur.length = 0;
      pending = [...target.split("/").filter(Boolean), ...pending];
      continue;
    }
    cur.push(c);
  }
  const real = "/" + cur.join("/");
  links.push({ path: real, kind: statSync(real).isDirectory() ? "dir" : "file" });
  return links;
}

/**
 * Put a host file into the archive at its host path, with every symlink on the way (same
 * relative/absolute targets as the host). Returns the archive path of the real file.
 */
export function mirrorHostPath(tree: ArchiveTree, hostPath: string): string {
  const chain = hostPathChain(hostPath);
  for (const l of chain) {
    if (l.kind === "symlink") tree.addSymlink(l.path, l.target);
  }
  const last = chain[chain.length - 1]!;
  if (last.kind !== "file") throw new Error(`${hostPath}: not a regular file`);
  const st = statSync(last.path);
  return tree.addFile(last.path, last.path, st.size, st.mode & 0o7777);
}
