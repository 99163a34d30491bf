// The archive's file tree in memory (metadata only; file contents stay on disk until written).
// Paths are stored without a leading "/". Adding a path resolves symlinks the archive already holds
// in its parent directories (e.g. after "lib -> usr/lib", "lib/modules/x" lands in "usr/lib/modules/x"),
// so the archive never asks an unpacker to write through a symlink, and missing parents become dirs.
import { posix } from "node:path";

export type TreeNode =
  | { kind: "dir"; perm: number }
  | { kind: "file"; perm: number; size: number; source: string | Uint8Array }
  | { kind: "symlink"; target: string }
  | { kind: "char" | "block"; perm: number; major: number; minor: number };

export class ArchiveTree {
  readonly nodes = new Map<string, TreeNode>();

  /** Normalise to "a/b/c" (no leading slash); rejects paths that climb out of the root. */
  static clean(path: string): string {
    const parts: string[] = [];
    for (const c of path.split("/")) {
      if (c === "" || c === ".") continue;
      if (c === "..") throw new Error(`archive path ${JSON.stringify(path)} contains ".."`);
      parts.push(c);
    }
    if (!parts.length) throw new Error(`archive path ${JSON.stringify(path)} names the root`);
    return parts.join("/");
  }

  /**
   * Canonical location for `path`: symlinks in parent components are followed (and, if
   * `followLast`, in the last one), missing parents are created as directories.
   */
  resolve(path: string, followLast = false): string {
    let pending = ArchiveTree.clean(path).split("/");
    const cur: string[] = [];
    let hops = 0;
    while (pending.length) {
      const c = pending.shift()!;
      if (c === ".") continue;
      if (c === "..") {
        cur.pop();
        continue;
      }
      const here = [...cur, c].join("/");
      const isLast = pending.length === 0;
      const node = this.nodes.get(here);
      if (node?.kind === "symlink" && (!isLast || followLast)) {
        if (++hops > 40) throw new Error(`archive path ${path}: too many symlinks`);
        if (node.target.startsWith("/")) cur.length = 0;
        pending = [...node.target.split("/").filter(Boolean), ...pending];
        continue;
      }
      if (!isLast) {
        if (!node) this.nodes.set(here, { kind: "dir", perm: 0o755 });
        else if (node.kind !== "dir") throw new Error(`archive path ${path}: ${here} is not a directory`);
      }
      cur.push(c);
    }
    if (!cur.length) throw new Error(`archive path ${JSON.stringify(path)} resolves to the root`);
    return cur.join("/");
  }

  private put(path: string, node: TreeNode): string {
    const at = this.resolve(path, node.kind === "dir");
    const old = this.nodes.get(at);
    if (old && (old.kind === "dir") !== (node.kind === "dir")) {
      throw new Error(`archive path /${at}: cannot replace a ${old.kind} with a ${node.kind}`);
    }
    this.nodes.set(at, node);
    return at;
  }

  addDir(path: string, perm = 0o755): string {
    return this.put(path, { kind: "dir", perm });
  }

  /** A file whose bytes come from a host path (read when the archive is written) or from memory. */
  addFile(path: string, source: string | Uint8Array, size: number, perm = 0o644): string {
    return this.put(path, { kind: "file", perm, size, source });
  }

  addSymlink(path: string, target: string): string {
    return this.put(path, { kind: "symlink", target });
  }

  addDevice(path: string, kind: "char" | "block", major: number, minor: number, perm = 0o600): string {
    return this.put(path, { kind, perm, major, minor });
  }

  /** All nodes sorted by path; a parent always sorts before its children. */
  sorted(): Array<[string, TreeNode]> {
    return [...this.nodes.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  has(path: string): boolean {
    return this.nodes.has(ArchiveTree.clean(path));
  }

  get(path: string): TreeNode | undefined {
    return this.nodes.get(ArchiveTree.clean(path));
  }
}

/** Directory part of an archive path ("" for top level). */
export function parentOf(path: string): string {
  const d = posix.dirname(path);
  return d === "." ? "" : d;
}
