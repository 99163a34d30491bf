// Group commit for files written to a removable medium: each file is written under a tmp name,
// then waits with the others written meanwhile for one flush of the whole filesystem (syncfs),
// and only then is renamed to its real name: every file is "written to a temporary name, synced,
// renamed". The renames themselves reach the medium with the next flush; when no commit follows
// within `sealMs`, one more flush is made for them, so a power cut loses at most the last moments
// (on vfat a rename otherwise waits for the kernel's writeback, ~30 s; fsync per file and a kill
// right after a boot lost every entry).
//
// FAT has no journal, and Linux can write a file's directory entry before the FAT sectors of its
// clusters: a cut in between leaves an entry naming a free cluster, which mtools refuses to read
// ("Fat problem while decoding"). Changes made while a flush runs widen that window (a file
// created meanwhile can get its entry written by this flush and its FAT sectors by the next), so
// every change to the medium (tmp file, mkdir, unlink, rename) goes through change(), and a flush
// waits for the changes in progress and holds new ones back until it is done. Measured with the
// USB e2e test's hard kills: a stick mtools could not read in 3 of 6 runs without this, 0 of 5
// with it. Every entry is verified on read anyway; this is about keeping the stick readable.
import { mkdir, open, rename, unlink } from "node:fs/promises";
import { dirname } from "node:path";
import { writeTemp } from "./atomic.ts";

/** Flushes the filesystem holding dir; rejects if that failed. */
export type FsFlush = (dir: string) => Promise<void>;

/**
 * The medium's mount, put at rest (read-only) while nothing is written: a FAT stick is then clean
 * (Linux clears its dirty bit), so pulling it or a power cut between writes harms nothing, and the
 * next boot needs no fsck. Both calls are no-ops in the state already reached; wake() throws if
 * the medium cannot be written (the change then fails like any write error).
 */
export interface MediumMount {
  wake(): void;
  rest(): void;
}

interface Pending {
  tmp: string;
  path: string;
  done: (e?: Error) => void;
}

export class GroupCommit {
  private queue: Pending[] = [];
  private running = false;
  private seal: ReturnType<typeof setTimeout> | null = null;
  /** changes in progress, and who waits for them to end (a flush) */
  private changing = 0;
  private quiet: (() => void)[] = [];
  /** a flush in progress, and who waits for it to end (changes) */
  private flushing = false;
  private flushed: (() => void)[] = [];
  /** flushes done, for commits and for renames (tests, stats) */
  flushes = 0;

  private restTimer: ReturnType<typeof setTimeout> | null = null;

  /**
   * @param dir any path on the filesystem whose files are committed here
   * @param mount with it, the medium rests (read-only) once nothing has been written for restMs
   *   (and the renames are sealed), and wakes before the next change
   */
  constructor(
    private dir: string,
    private flush: FsFlush,
    private sealMs = 1000,
    private mount: MediumMount | null = null,
    private restMs = 2000,
  ) {
    this.restLater(); // a boot that writes nothing leaves the medium clean too
  }

  /** Runs a change to the medium (writing a tmp file, mkdir, unlink) while no flush runs. */
  async change<T>(fn: () => Promise<T>): Promise<T> {
    while (this.flushing) await new Promise<void>((r) => this.flushed.push(r));
    this.mount?.wake();
    this.changing++;
    try {
      return await fn();
    } finally {
      if (--this.changing === 0) for (const r of this.quiet.splice(0)) r();
      this.restLater();
    }
  }

  /** (Re)arms the rest: restMs after the last change, once everything is flushed. */
  private restLater() {
    if (!this.mount) return;
    if (this.restTimer) clearTimeout(this.restTimer);
    this.restTimer = setTimeout(() => this.rest(), this.restMs);
    (this.restTimer as { unref?: () => void }).unref?.();
  }

  private rest() {
    this.restTimer = null;
    // Not while anything is in flight: a commit, its seal flush, a change.
    if (this.running || this.flushing || this.changing > 0 || this.queue.length > 0 || this.seal) return this.restLater();
    try {
      this.mount!.rest();
    } catch {
      // busy or refused: it stays writable, and the next quiet moment tries again
    }
  }

  /** mkdir -p, each new dir put on the medium at once (its own clusters, then its entry in the
   *  parent) before any file goes in: a flush of the whole filesystem can write the parent's entry
   *  before the new dir's clusters, and a cut in between leaves a "corrupted directory" that sets
   *  the whole FAT read-only at the next boot. Call it inside change() (it is a change). */
  async makeDir(dir: string): Promise<void> {
    const first = await mkdir(dir, { recursive: true });
    if (!first) return;
    const made = [dir];
    while (made.at(-1) !== first && dirname(made.at(-1)!) !== made.at(-1)) made.push(dirname(made.at(-1)!));
    for (const d of [...made, dirname(first)]) {
      const h = await open(d, "r");
      try {
        await h.sync();
      } finally {
        await h.close();
      }
    }
  }

  /** A whole new file at path, the group-commit way: its dir made (and on the medium) if new, the
   *  bytes under a tmp name, then renamed once flushed. */
  async writeFile(path: string, data: Uint8Array | Uint8Array[]): Promise<void> {
    const tmp = await this.change(async () => {
      await this.makeDir(dirname(path));
      return writeTemp(path, data);
    });
    await this.commit(tmp, path);
  }

  /** Renames tmp to path once tmp's bytes are on the medium. On failure tmp is removed and the
   *  promise rejects: the file never appears under its real name unflushed. */
  commit(tmp: string, path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ tmp, path, done: (e) => (e ? reject(e) : resolve()) });
      void this.drain();
    });
  }

  /** One flush of a filesystem at rest: changes in progress end first, new ones wait. */
  private async flushAtRest(): Promise<void> {
    this.flushing = true;
    try {
      while (this.changing > 0) await new Promise<void>((r) => this.quiet.push(r));
      await this.flush(this.dir);
      this.flushes++;
    } finally {
      this.flushing = false;
      for (const r of this.flushed.splice(0)) r();
    }
  }

  private async drain(): Promise<void> {
    if (this.running) return;
    this.running = true;
    if (this.seal) clearTimeout(this.seal);
    this.seal = null;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0);
        let failed: Error | undefined;
        try {
          await this.flushAtRest();
        } catch (e) {
          failed = e as Error;
        }
        // the renames are changes too: the next flush waits for them
        await Promise.all(
          batch.map((p) =>
            this.change(async () => {
              try {
                if (failed) throw failed;
                await rename(p.tmp, p.path);
                p.done();
              } catch (e) {
                await unlink(p.tmp).catch(() => {});
                p.done(e as Error);
              }
            }),
          ),
        );
      }
    } finally {
      this.running = false;
    }
    this.seal = setTimeout(() => this.sealRenames(), this.sealMs);
    (this.seal as { unref?: () => void }).unref?.();
  }

  /** The flush that puts the last batch's renames on the medium (nothing waits for it). */
  private async sealRenames(): Promise<void> {
    this.seal = null;
    if (this.running) return; // a commit is flushing: it carries the renames
    this.running = true;
    try {
      await this.flushAtRest();
    } catch {
      // the entries are in place; their names reach the medium with the next flush that works
    } finally {
      this.running = false;
    }
    if (this.queue.length > 0) void this.drain();
  }
}
