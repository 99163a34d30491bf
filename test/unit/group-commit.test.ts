// Group commit of cache entries (removable media): tmp file → one flush for everything written
// meanwhile → rename; and the syncfs Worker that does the flush.
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeTemp } from "../../src/store/atomic.ts";
import { GroupCommit } from "../../src/store/group-commit.ts";
import { DiskCache } from "../../src/store/fetcher/diskcache.ts";
import { chunkPath, sha256Hex } from "../../src/store/chunk-name.ts";
import { FsFlusher } from "../../src/sys/fsflush.ts";
import { cachedIndexPath, INDEXES_DIR, saveCachedIndex } from "../../src/store/fetcher/indexcache.ts";
import { prng, tmp } from "./store-fixtures.ts";

/** A flush the test releases by hand; records what existed under the final names when it ran. */
function gate(paths: () => string[]) {
  const calls: { seen: boolean[]; release: (e?: Error) => void }[] = [];
  const flush = (_dir: string) =>
    new Promise<void>((resolve, reject) => {
      calls.push({ seen: paths().map((p) => existsSync(p)), release: (e) => (e ? reject(e) : resolve()) });
    });
  return { calls, flush };
}
const tick = () => Bun.sleep(5);
/** Waits (polling) until `ok()` holds, at most 2 s: a loaded machine may take longer than a tick. */
async function until(ok: () => boolean) {
  for (let i = 0; i < 400 && !ok(); i++) await Bun.sleep(5);
}

describe("group commit", () => {
  test("files written during a flush share the next one; none is renamed before its flush", async () => {
    const dir = tmp();
    const names = ["a", "b", "c"].map((n) => join(dir, n));
    const g = gate(() => names);
    const gc = new GroupCommit(dir, g.flush, 60_000);
    const done: string[] = [];
    // the tmp files first: the file system's speed must not decide which flush an entry joins
    const temps = await Promise.all(names.map((n, i) => writeTemp(n, new TextEncoder().encode(`entry ${i}`))));
    const commit = async (i: number) => {
      await gc.commit(temps[i]!, names[i]!);
      done.push(names[i]!);
    };
    const pa = commit(0);
    await until(() => g.calls.length >= 1);
    expect(g.calls.length).toBe(1);
    const pbc = [commit(1), commit(2)];
    await tick();
    expect(g.calls.length).toBe(1); // b and c wait for a's flush to end
    g.calls[0]!.release();
    await pa;
    expect(readFileSync(names[0]!, "utf8")).toBe("entry 0");
    await until(() => g.calls.length >= 2);
    expect(g.calls.length).toBe(2); // one flush for b and c together
    expect(done).toEqual([names[0]]);
    expect(g.calls[1]!.seen).toEqual([true, false, false]);
    g.calls[1]!.release();
    await Promise.all(pbc);
    expect(gc.flushes).toBe(2);
    expect(readdirSync(dir).sort()).toEqual(["a", "b", "c"]); // no tmp file left
  });

  test("a failed flush: the commit rejects, the tmp file goes, nothing appears; the next works", async () => {
    const dir = tmp();
    const path = join(dir, "x");
    const g = gate(() => [path]);
    const gc = new GroupCommit(dir, g.flush, 60_000);
    const p = gc.commit(await writeTemp(path, new Uint8Array([1, 2, 3])), path);
    await tick();
    g.calls[0]!.release(new Error("syncfs(/stick): EIO (Input/output error)"));
    await expect(p).rejects.toThrow("syncfs(/stick): EIO");
    expect(readdirSync(dir)).toEqual([]);
    const p2 = gc.commit(await writeTemp(path, new Uint8Array([4])), path);
    await tick();
    g.calls[1]!.release();
    await p2;
    expect([...readFileSync(path)]).toEqual([4]);
  });

  test("a flush waits for changes in progress, and holds new ones back until it is done", async () => {
    const dir = tmp();
    const path = join(dir, "f");
    const g = gate(() => [path]);
    const gc = new GroupCommit(dir, g.flush, 60_000);
    let endChange!: () => void;
    const inProgress = gc.change(() => new Promise<void>((r) => (endChange = r)));
    const p = gc.commit(await writeTemp(path, new Uint8Array([7])), path);
    await tick();
    expect(g.calls.length).toBe(0); // a change is in progress: no flush yet
    endChange();
    await inProgress;
    await tick();
    expect(g.calls.length).toBe(1);
    let ran = false;
    const late = gc.change(async () => void (ran = true));
    await tick();
    expect(ran).toBe(false); // held back while the flush runs
    g.calls[0]!.release();
    await Promise.all([p, late]);
    expect(ran).toBe(true);
    expect(existsSync(path)).toBe(true);
  });

  test("renames reach the medium: one more flush once no commit follows for sealMs", async () => {
    const dir = tmp();
    const path = join(dir, "r");
    const g = gate(() => [path]);
    const gc = new GroupCommit(dir, g.flush, 30);
    const p = gc.commit(await writeTemp(path, new Uint8Array([9])), path);
    await tick();
    g.calls[0]!.release();
    await p;
    await Bun.sleep(10);
    expect(g.calls.length).toBe(1); // not yet: another commit may carry the rename
    await Bun.sleep(60);
    expect(g.calls.length).toBe(2);
    expect(g.calls[1]!.seen).toEqual([true]); // this one flushes the renamed entry
    // a commit arriving during that flush waits for it, then gets its own
    const q = gc.commit(await writeTemp(path + "2", new Uint8Array([8])), path + "2");
    await tick();
    expect(g.calls.length).toBe(2);
    g.calls[1]!.release();
    await tick();
    expect(g.calls.length).toBe(3);
    g.calls[2]!.release();
    await q;
    expect(existsSync(path + "2")).toBe(true);
  });

  test("disk cache with a flush: get() answers only once its entry is flushed and renamed", async () => {
    const dir = tmp();
    const data = prng(70_000, 5);
    const ref = { hex: sha256Hex(data), size: data.length };
    const path = join(dir, chunkPath(ref.hex));
    const g = gate(() => [path]);
    const gc = new GroupCommit(dir, g.flush, 60_000);
    const dc = new DiskCache({ get: async () => data }, dir, 0, gc);
    let answered = false;
    const p = dc.get(ref).then((b) => ((answered = true), b));
    for (let i = 0; i < 50 && g.calls.length === 0; i++) await tick();
    expect(g.calls.length).toBe(1);
    expect(answered).toBe(false);
    expect(g.calls[0]!.seen).toEqual([false]);
    g.calls[0]!.release();
    expect(await p).toEqual(data);
    expect(existsSync(path)).toBe(true);
    expect(gc.flushes).toBe(1);
  });

  test("disk cache with a flush that hangs (a stick pulled): get() answers after the write-through bound", async () => {
    const dir = tmp();
    const data = prng(70_000, 6);
    const ref = { hex: sha256Hex(data), size: data.length };
    const g = gate(() => [join(dir, chunkPath(ref.hex))]); // never released
    const dc = new DiskCache({ get: async () => data }, dir, 0, new GroupCommit(dir, g.flush, 60_000), null, 200);
    const t0 = performance.now();
    expect(await dc.get(ref)).toEqual(data);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(190); // it did wait for the medium first
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  test("the cached index: its new indexes/ dir goes through makeDir, the file appears after its flush", async () => {
    const dir = tmp();
    const bytes = prng(300, 9);
    const path = cachedIndexPath(dir, "http://h/s/index");
    const g = gate(() => [path]);
    const gc = new GroupCommit(dir, g.flush, 60_000);
    const made: string[] = [];
    const makeDir = gc.makeDir.bind(gc);
    gc.makeDir = (d: string) => (made.push(d), makeDir(d));
    const saved = saveCachedIndex(dir, "http://h/s/index", bytes, gc);
    for (let i = 0; i < 50 && g.calls.length === 0; i++) await tick();
    expect(made).toEqual([join(dir, INDEXES_DIR)]);
    expect(g.calls[0]!.seen).toEqual([false]);
    g.calls[0]!.release();
    await saved;
    expect(Buffer.from(readFileSync(path)).equals(Buffer.from(bytes))).toBe(true);
  });
});

describe("the medium at rest (read-only while nothing is written)", () => {
  /** Like the real one (cache-medium.ts): each call a no-op in the state already reached. */
  const fakeMount = (log: string[], failWake = false) => {
    let resting = false;
    return {
      wake: () => {
        if (!resting) return;
        if (failWake) throw new Error("mount(/m → /m, remount): EROFS");
        resting = false;
        log.push("wake");
      },
      rest: () => {
        if (resting) return;
        resting = true;
        log.push("rest");
      },
    };
  };

  test("rests once quiet (also when nothing was written), wakes before the next change, rests again after the seal", async () => {
    const dir = tmp();
    const log: string[] = [];
    const flush = async () => void log.push("flush");
    const gc = new GroupCommit(dir, flush, 20, fakeMount(log), 40);
    await Bun.sleep(80);
    expect(log).toEqual(["rest"]); // a boot that writes nothing leaves the medium clean
    const path = join(dir, "x");
    const t = await gc.change(async () => (log.push("write"), writeTemp(path, new Uint8Array([1, 2, 3]))));
    await gc.commit(t, path);
    expect(log.slice(0, 4)).toEqual(["rest", "wake", "write", "flush"]);
    for (let i = 0; i < 100 && log.at(-1) !== "rest"; i++) await tick();
    // the renames' seal flush comes before the rest
    expect(log.slice(4)).toEqual(["flush", "rest"]);
    expect(existsSync(path)).toBe(true);
  });

  test("no rest while a flush runs; it comes once the flush is done", async () => {
    const dir = tmp();
    const log: string[] = [];
    const path = join(dir, "y");
    const g = gate(() => [path]);
    const gc = new GroupCommit(dir, g.flush, 10, fakeMount(log), 20);
    const t = await gc.change(() => writeTemp(path, new Uint8Array([4])));
    const c = gc.commit(t, path);
    await Bun.sleep(80);
    expect(log).toEqual([]); // the flush holds the rest back
    g.calls[0]!.release();
    await c;
    for (let i = 0; i < 100 && g.calls.length < 2; i++) await tick();
    g.calls[1]!.release(); // the seal flush
    for (let i = 0; i < 100 && !log.includes("rest"); i++) await tick();
    expect(log).toEqual(["rest"]);
  });

  test("a medium that cannot be woken fails the change: nothing is run or written", async () => {
    const dir = tmp();
    const log: string[] = [];
    const gc = new GroupCommit(dir, async () => {}, 10, fakeMount(log, true), 10);
    await Bun.sleep(40);
    expect(log).toEqual(["rest"]);
    let ran = false;
    await expect(gc.change(async () => (ran = true))).rejects.toThrow("EROFS");
    await tick();
    expect(ran).toBe(false);
  });
});

describe("FsFlusher (syncfs on a Worker)", () => {
  test("flushes a real filesystem on its worker thread", async () => {
    const f = new FsFlusher();
    await f.flush(tmp());
    await f.flush(tmp());
    expect(f.threaded).toBe(true);
    f.close();
  });

  test("20 chunks cached at once through the real flusher share a few flushes", async () => {
    const dir = tmp();
    const f = new FsFlusher();
    const gc = new GroupCommit(dir, (d) => f.flush(d), 60_000);
    const chunks = Array.from({ length: 20 }, (_, i) => prng(70_000, 100 + i));
    const byHex = new Map(chunks.map((c) => [sha256Hex(c), c]));
    const dc = new DiskCache({ get: async (r) => byHex.get(r.hex)! }, dir, 0, gc);
    const refs = [...byHex.keys()].map((hex) => ({ hex, size: 70_000 }));
    const got = await Promise.all(refs.map((r) => dc.get(r)));
    expect(got.every((b, i) => b.length === 70_000 && sha256Hex(b) === refs[i]!.hex)).toBe(true);
    expect(refs.every((r) => existsSync(join(dir, chunkPath(r.hex))))).toBe(true);
    expect(gc.flushes).toBeGreaterThan(0);
    expect(gc.flushes).toBeLessThan(20);
    expect(f.threaded).toBe(true);
    f.close();
  });

  test("a dir that is not there: one line naming it", async () => {
    const f = new FsFlusher();
    const missing = join(tmp(), "gone");
    await expect(f.flush(missing)).rejects.toThrow(missing);
    f.close();
  });
});
