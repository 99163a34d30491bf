// Bottom layers: where chunk bytes come from. Both verify (unpackChunkAsync) before returning.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { chunkPath } from "../chunk-name.ts";
import { ChunkError, maxPackedSize, unpackChunkAsync, type ChunkRef } from "../chunk.ts";
import type { Origin } from "./layer.ts";
import type { HttpPool } from "./pool.ts";

/** Ensures a base URL ends with "/" so relative chunk paths resolve below it. */
export function baseUrl(url: string): string {
  return url.endsWith("/") ? url : `${url}/`;
}

export class HttpOrigin implements Origin {
  readonly name: string;
  constructor(
    base: string,
    private pool: HttpPool,
  ) {
    this.name = baseUrl(base);
  }
  async get(ref: ChunkRef, signal?: AbortSignal): Promise<Uint8Array> {
    const packed = await this.pool.get(this.name + chunkPath(ref.hex), undefined, signal, maxPackedSize(ref.size));
    try {
      return await unpackChunkAsync(ref, packed);
    } catch (e) {
      throw new ChunkError(`${this.name}: ${(e as Error).message}`);
    }
  }
}

export class DirOrigin implements Origin {
  constructor(readonly name: string) {}
  async get(ref: ChunkRef): Promise<Uint8Array> {
    const path = join(this.name, chunkPath(ref.hex));
    const packed = await readFile(path).catch((e) => {
      throw new ChunkError(`${path}: ${e.code === "ENOENT" ? "missing" : e.message}`);
    });
    return unpackChunkAsync(ref, packed);
  }
}
