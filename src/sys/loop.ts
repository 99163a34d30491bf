// Loop devices: attach an image file read-only (LOOP_CTL_GET_FREE + LOOP_CONFIGURE), the way the
// seed loop-mounted /cdrom/KNOPPIX/KNOPPIX. No autoclear: closing our fd before the mount would
// detach it.
import { openSync, closeSync, existsSync } from "node:fs";
import { ioctl, ioctlInt } from "./ffi.ts";

const LOOP_CTL_GET_FREE = 0x4c82;
const LOOP_CONFIGURE = 0x4c0a;
const LO_FLAGS_READ_ONLY = 1;

/** struct loop_config: fd, block_size, struct loop_info64 (232 bytes), 64 reserved bytes. */
export function encodeLoopConfig(fd: number, flags: number): Uint8Array {
  const b = new Uint8Array(304);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, fd, true);
  dv.setUint32(8 + 52, flags, true); // loop_info64.lo_flags
  return b;
}

export async function attachLoop(image: string): Promise<string> {
  const ctl = openSync("/dev/loop-control", "r+");
  let n: number;
  try {
    n = ioctlInt(ctl, LOOP_CTL_GET_FREE, 0, "ioctl(/dev/loop-control, LOOP_CTL_GET_FREE)");
  } finally {
    closeSync(ctl);
  }
  const dev = `/dev/loop${n}`;
  for (let i = 0; i < 100 && !existsSync(dev); i++) await Bun.sleep(10);
  const file = openSync(image, "r");
  const loop = openSync(dev, "r");
  try {
    ioctl(loop, LOOP_CONFIGURE, encodeLoopConfig(file, LO_FLAGS_READ_ONLY), `ioctl(${dev}, LOOP_CONFIGURE ${image})`);
  } finally {
    closeSync(file);
    closeSync(loop);
  }
  return dev;
}
