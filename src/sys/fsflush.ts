// Flushing one filesystem (syncfs(2)), what a group commit of cache entries waits for. The call
// runs on a Worker thread, so the caller's event loop goes on serving while a USB stick flushes
// (measured in the guest: 2–10 ms per flush; a real stick can take far longer). If the Worker
// cannot start or dies, the flush runs on the calling thread: slower, same guarantee.
import { closeSync, openSync } from "node:fs";
import { SYNCFS_WORKER_SRC, SysError, syncfs } from "./ffi.ts";

interface Waiter {
  resolve: () => void;
  reject: (e: Error) => void;
  what: string;
}

export class FsFlusher {
  private worker: Worker | null = null;
  private broken = false;
  private nextId = 1;
  private waiting = new Map<number, Waiter>();

  /** true once a flush ran on the Worker (false: none yet, or on the calling thread) */
  threaded = false;

  /** syncfs() of the filesystem holding dir; rejects with e.g. `syncfs(/mnt/cache): EIO (…)`. */
  async flush(dir: string): Promise<void> {
    const what = `syncfs(${dir})`;
    const fd = openSync(dir, "r");
    try {
      const w = this.start();
      if (!w) return syncfs(fd, what);
      const id = this.nextId++;
      await new Promise<void>((resolve, reject) => {
        this.waiting.set(id, { resolve, reject, what });
        w.postMessage({ id, fd });
      });
    } finally {
      closeSync(fd);
    }
  }

  /** Ends the Worker (a flush in progress on it rejects). */
  close(): void {
    this.worker?.terminate();
    this.fail(new Error("flusher closed"));
    this.worker = null;
    this.broken = true;
  }

  private start(): Worker | null {
    if (this.worker || this.broken) return this.worker;
    try {
      const url = URL.createObjectURL(new Blob([SYNCFS_WORKER_SRC], { type: "application/javascript" }));
      const w = new Worker(url);
      w.onmessage = (e: MessageEvent<{ id: number; errno: number }>) => {
        const x = this.waiting.get(e.data.id);
        if (!x) return;
        this.waiting.delete(e.data.id);
        if (e.data.errno) return x.reject(new SysError(x.what, e.data.errno));
        this.threaded = true;
        x.resolve();
      };
      w.onerror = () => {
        // from now on on the calling thread; the flushes it was doing are not known to be done
        this.worker = null;
        this.broken = true;
        this.fail(new Error("syncfs worker died"));
      };
      w.unref(); // never keeps a process alive
      this.worker = w;
    } catch {
      this.broken = true;
    }
    return this.worker;
  }

  private fail(e: Error): void {
    for (const [id, x] of this.waiting) {
      this.waiting.delete(id);
      x.reject(new Error(`${x.what}: ${e.message}`));
    }
  }
}
