// The layer interface every block provider implements (nbdkit-style stackable layers: a store
// reader, a raw HTTP image, a copy-on-write overlay, a cache or read-ahead wrapper all look alike,
// so each wraps the one below without knowing what it is).

/** A run of bytes with the same allocation state (NBD base:allocation). */
export interface Extent {
  offset: number;
  length: number;
  /** true when the range reads as zeros and is not stored (a hole). */
  zero: boolean;
}

export interface BlockSource {
  /** Size of the image in bytes. */
  readonly size: number;
  /** true when write/trim/zero are refused. */
  readonly readOnly: boolean;
  /** Preferred block size for clients (the chunk size of a store, 4096 otherwise). */
  readonly blockSize: number;
  /** Reads exactly `length` bytes at `offset` (caller checks bounds). Rejects with an Error whose
   *  `code` is "EIO" when the data cannot be fetched or verified. The bytes may be a view shared
   *  with a cache (no copy on the hot path): callers must not modify them. */
  read(offset: number, length: number): Promise<Uint8Array>;
  write?(offset: number, data: Uint8Array): Promise<void>;
  /** Zeros a range; `noHole`: keep it allocated (the client sent NBD_CMD_FLAG_NO_HOLE). */
  zero?(offset: number, length: number, noHole?: boolean): Promise<void>;
  trim?(offset: number, length: number): Promise<void>;
  flush?(): Promise<void>;
  /** Hint that the range will be read soon (NBD_CMD_CACHE, read-ahead). */
  prefetch?(offset: number, length: number): Promise<void>;
  /** True when the whole range reads as zeros and is not stored (cheap, synchronous): a READ of it
   *  can be answered with a hole instead of zero bytes. Sources without holes may omit it. */
  isHole?(offset: number, length: number): boolean;
  /** Allocation map of a range; sources without holes may omit it. */
  extents?(offset: number, length: number): Promise<Extent[]>;
  close?(): Promise<void>;
}

/** An Error with an errno-like code, as NBD replies need (EIO, EINVAL, EPERM, ENOSPC). */
export class BlockError extends Error {
  constructor(readonly code: "EIO" | "EINVAL" | "EPERM" | "ENOSPC" | "ENOTSUP", message: string) {
    super(message);
    this.name = "BlockError";
  }
}
