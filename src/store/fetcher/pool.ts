// Bounded HTTP client: at most `maxParallel` requests in flight (Bun's fetch keeps connections
// alive and reuses them), a per-request timeout covering headers *and* body, and strict checks
// that the body is complete (status, Content-Length, Content-Range), since a short or stalled
// body must become an error the mirror layer can fail over from.

export class HttpError extends Error {
  constructor(
    readonly url: string,
    message: string,
    readonly status?: number,
  ) {
    super(`${url}: ${message}`);
    this.name = "HttpError";
  }
}

export interface PoolOptions {
  maxParallel?: number;
  /** per-request timeout in ms (headers and body) */
  timeoutMs?: number;
}

export class HttpPool {
  readonly maxParallel: number;
  readonly timeoutMs: number;
  private active = 0;
  private waiters: (() => void)[] = [];
  /** requests issued (for tests and stats) */
  requests = 0;

  constructor(opts: PoolOptions = {}) {
    this.maxParallel = opts.maxParallel ?? 8;
    this.timeoutMs = opts.timeoutMs ?? 15_000;
  }

  private async acquire(): Promise<void> {
    if (this.active < this.maxParallel) {
      this.active++;
      return;
    }
    await new Promise<void>((r) => this.waiters.push(r));
  }

  private release(): void {
    const next = this.waiters.shift();
    if (next) next(); // hand the slot over directly
    else this.active--;
  }

  /** GET a whole resource, or bytes [start, end) with a Range request. 404 → HttpError status 404. */
  async get(url: string, range?: { start: number; end: number }, signal?: AbortSignal): Promise<Uint8Array> {
    await this.acquire();
    try {
      const timeout = AbortSignal.timeout(this.timeoutMs);
      const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
      // identity: a transparently decompressed body would not match Content-Length.
      const headers: Record<string, string> = { "accept-encoding": "identity" };
      if (range) headers.range = `bytes=${range.start}-${range.end - 1}`;
      this.requests++;
      let res: Response;
      let body: Uint8Array;
      try {
        res = await fetch(url, { headers, signal: sig, redirect: "follow" });
        if (res.status === 404) {
          await res.body?.cancel().catch(() => {});
          throw new HttpError(url, "404 not found", 404);
        }
        if (range ? res.status !== 206 : res.status !== 200) {
          await res.body?.cancel().catch(() => {});
          const why = range && res.status === 200 ? "server ignored the Range header" : `HTTP ${res.status}`;
          throw new HttpError(url, why, res.status);
        }
        body = new Uint8Array(await res.arrayBuffer());
      } catch (e) {
        if (e instanceof HttpError) throw e;
        if (timeout.aborted) throw new HttpError(url, `timed out after ${this.timeoutMs} ms`);
        if (signal?.aborted) throw new HttpError(url, "aborted");
        throw new HttpError(url, (e as Error).message?.split("\n")[0] ?? String(e));
      }
      const cl = res.headers.get("content-length");
      if (cl !== null && Number(cl) !== body.length)
        throw new HttpError(url, `short body: ${body.length} of ${cl} bytes`);
      if (range) {
        const want = range.end - range.start;
        const cr = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(res.headers.get("content-range") ?? "");
        if (!cr || Number(cr[1]) !== range.start || Number(cr[2]) !== range.end - 1)
          throw new HttpError(url, `unexpected Content-Range "${res.headers.get("content-range")}"`);
        if (body.length !== want) throw new HttpError(url, `short body: ${body.length} of ${want} bytes`);
      }
      return body;
    } finally {
      this.release();
    }
  }

  /** Size of a resource: HEAD's Content-Length, else a 1-byte Range GET's Content-Range total. */
  async size(url: string, signal?: AbortSignal): Promise<{ size: number; ranges: boolean }> {
    await this.acquire();
    try {
      const timeout = AbortSignal.timeout(this.timeoutMs);
      const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
      this.requests++;
      let res: Response;
      try {
        res = await fetch(url, { headers: { range: "bytes=0-0", "accept-encoding": "identity" }, signal: sig });
        await res.body?.cancel().catch(() => {});
      } catch (e) {
        if (timeout.aborted) throw new HttpError(url, `timed out after ${this.timeoutMs} ms`);
        throw new HttpError(url, (e as Error).message?.split("\n")[0] ?? String(e));
      }
      if (res.status === 206) {
        const m = /\/(\d+)$/.exec(res.headers.get("content-range") ?? "");
        if (!m) throw new HttpError(url, "Range reply without a total size");
        return { size: Number(m[1]), ranges: true };
      }
      if (res.status === 200) return { size: Number(res.headers.get("content-length") ?? NaN), ranges: false };
      throw new HttpError(url, `HTTP ${res.status}`, res.status);
    } finally {
      this.release();
    }
  }
}
