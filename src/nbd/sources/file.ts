// A BlockSource over a local file (or block device): the simplest provider, used by
// `inetboot nbd FILE` and by the tests. Holes come from SEEK_DATA/SEEK_HOLE, so a sparse file
// shows its holes through base:allocation.
import { open, stat, type FileHandle } from "node:fs/promises";
import { BlockError, type BlockSource, type Extent } from "../../store/source.ts";
import { lseek, SEEK } from "../../sys/ffi.ts";
import { UserError } from "../../sys/errors.ts";

export interface FileSourceOptions {
  readOnly?: boolean;
  blockSize?: number;
}

export async function openFileSource(path: string, opts: FileSourceOptions = {}): Promise<BlockSource> {
  const readOnly = opts.readOnly ?? true;
  let fh: FileHandle;
  try {
    fh = await open(path, readOnly ? "r" : "r+");
  } catch (e) {
    throw new UserError(`open(${path}): ${(e as { code?: string }).code ?? String(e)}`);
  }
  const st = await stat(path);
  let size = st.size;
  if (st.isBlockDevice()) {
    // stat reports 0 for devices: the end offset is the size.
    size = lseek(fh.fd, 0, 2 /* SEEK_END */, `lseek(${path})`);
  } else if (!st.isFile()) {
    await fh.close();
    throw new UserError(`${path}: not a regular file or block device`);
  }
  const fd = fh.fd;

  const fail = (op: string, e: unknown): never => {
    throw new BlockError("EIO", `${op} ${path}: ${e instanceof Error ? e.message : String(e)}`);
  };

  return {
    size,
    readOnly,
    blockSize: opts.blockSize ?? 4096,
    async read(offset, length) {
      const buf = new Uint8Array(length);
      let got = 0;
      try {
        while (got < length) {
          const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
          if (bytesRead === 0) break; // past EOF (file shrank): the rest reads as zeros
          got += bytesRead;
        }
      } catch (e) {
        fail("read", e);
      }
      return buf;
    },
    ...(readOnly
      ? {}
      : {
          async write(offset: number, data: Uint8Array) {
            try {
              let put = 0;
              while (put < data.length) {
                const { bytesWritten } = await fh.write(data, put, data.length - put, offset + put);
                put += bytesWritten;
              }
            } catch (e) {
              fail("write", e);
            }
          },
          async flush() {
            try {
              await fh.sync();
            } catch (e) {
              fail("fsync", e);
            }
          },
        }),
    async extents(offset, length): Promise<Extent[]> {
      // Walk data/hole boundaries; any lseek failure just means "all data" (always a safe answer).
      const out: Extent[] = [];
      const end = Math.min(offset + length, size);
      let pos = offset;
      try {
        while (pos < end) {
          const data = lseek(fd, pos, SEEK.DATA);
          if (data < 0 || data >= end) {
            out.push({ offset: pos, length: end - pos, zero: true });
            break;
          }
          if (data > pos) out.push({ offset: pos, length: data - pos, zero: true });
          let hole = Math.min(lseek(fd, data, SEEK.HOLE), end);
          if (hole <= data) hole = end; // never loop on an odd answer
          out.push({ offset: data, length: hole - data, zero: false });
          pos = hole;
        }
      } catch {
        return [{ offset, length: end - offset, zero: false }];
      }
      return out;
    },
    async close() {
      await fh.close();
    },
  };
}
