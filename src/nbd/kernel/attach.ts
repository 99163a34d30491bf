// Hands an NBD connection to the kernel: a unix-socket client made with FFI (the fd kind the
// driver accepts; Bun's own sockets expose no fd), the fixed-newstyle handshake done here with
// blocking calls (the server is another process, so blocking cannot deadlock), then netlink
// NBD_CMD_CONNECT so no thread has to sit in NBD_DO_IT.
import { existsSync, readFileSync } from "node:fs";
import {
  AF, SOCK, socket, connect, closeFd, sendto, recvfrom, sockaddrUn, bind, SysError, setReceiveTimeout,
} from "../../sys/ffi.ts";
import { UserError } from "../../sys/errors.ts";
import {
  decodeGreeting, encodeClientFlags, encodeOption, encodeInfoRequest, decodeOptionReplyHeader,
} from "../codec.ts";
import {
  NBDMAGIC, IHAVEOPT, REPLY_MAGIC, FLAG_FIXED_NEWSTYLE, FLAG_NO_ZEROES, FLAG_C_FIXED_NEWSTYLE, FLAG_C_NO_ZEROES,
  OPT, REP, INFO, isRepError, GREETING_SIZE, OPTION_REPLY_HEADER_SIZE,
} from "../protocol.ts";
import {
  NETLINK_GENERIC, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR, NBD_GENL, NBD_CMD, NBD_ATTR, NLM_F,
  encodeGenlRequest, decodeMessages, strAttr, nbdConnectAttrs,
} from "./netlink.ts";

function sendAll(fd: number, data: Uint8Array, what: string) {
  let off = 0;
  while (off < data.byteLength) off += sendto(fd, data.subarray(off), null, what);
}
function readExact(fd: number, n: number, what: string): Uint8Array {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const r = recvfrom(fd, out.subarray(off), undefined, what);
    if (r === 0) throw new UserError(`${what}: the NBD server closed the connection during the handshake`);
    // EAGAIN on this blocking socket: its receive timeout (SO_RCVTIMEO) passed
    if (r < 0) throw new SysError(what, 11);
    off += r;
  }
  return out;
}

export interface ExportInfo {
  size: number;
  flags: number;
  preferredBlock?: number;
}

/** Client side of the fixed-newstyle handshake with NBD_OPT_GO, on a blocking fd. */
export function handshake(fd: number, exportName = ""): ExportInfo {
  const g = decodeGreeting(readExact(fd, GREETING_SIZE, "nbd handshake"));
  if (g.nbdMagic !== NBDMAGIC || g.optMagic !== IHAVEOPT) throw new UserError("nbd handshake: not an NBD newstyle server");
  if (!(g.flags & FLAG_FIXED_NEWSTYLE)) throw new UserError("nbd handshake: server lacks fixed newstyle");
  const noZeroes = (g.flags & FLAG_NO_ZEROES) !== 0;
  sendAll(fd, encodeClientFlags(FLAG_C_FIXED_NEWSTYLE | (noZeroes ? FLAG_C_NO_ZEROES : 0)), "nbd handshake");
  sendAll(fd, encodeOption(OPT.GO, encodeInfoRequest(exportName, [INFO.BLOCK_SIZE])), "nbd handshake");
  let info: ExportInfo | undefined;
  for (;;) {
    const h = decodeOptionReplyHeader(readExact(fd, OPTION_REPLY_HEADER_SIZE, "nbd handshake"));
    if (h.magic !== REPLY_MAGIC) throw new UserError("nbd handshake: bad option reply magic");
    const data = h.length ? readExact(fd, h.length, "nbd handshake") : new Uint8Array(0);
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    if (isRepError(h.type)) {
      throw new UserError(`nbd handshake: NBD_OPT_GO refused (0x${h.type.toString(16)}): ${new TextDecoder().decode(data)}`);
    }
    if (h.type === REP.INFO && data.byteLength >= 2) {
      const t = dv.getUint16(0);
      if (t === INFO.EXPORT && data.byteLength >= 12) info = { size: Number(dv.getBigUint64(2)), flags: dv.getUint16(10) };
      if (t === INFO.BLOCK_SIZE && data.byteLength >= 14 && info) info.preferredBlock = dv.getUint32(6);
    }
    if (h.type === REP.ACK) break;
  }
  if (!info) throw new UserError("nbd handshake: server sent no export information");
  return info;
}

let seq = 1;
function genlCall(nl: number, msg: Uint8Array, what: string) {
  sendto(nl, msg, null, what);
  const buf = new Uint8Array(65536);
  const replies = [];
  for (;;) {
    const n = recvfrom(nl, buf, undefined, what);
    if (n <= 0) throw new UserError(`${what}: no netlink reply`);
    const msgs = decodeMessages(buf.slice(0, n));
    for (const m of msgs) {
      if (m.kind === "error") {
        if (m.error !== 0) throw new SysError(what, m.error);
        return replies;
      }
      if (m.kind === "genl") replies.push(m);
    }
  }
}

/** Resolves the generic netlink family id of "nbd" (the module must be loaded). */
function nbdFamily(nl: number): number {
  const req = encodeGenlRequest(GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, seq++, [strAttr(CTRL_ATTR.FAMILY_NAME, NBD_GENL.FAMILY)]);
  const replies = genlCall(nl, req, "netlink(CTRL_CMD_GETFAMILY nbd)");
  const id = replies[0]?.attrs.get(CTRL_ATTR.FAMILY_ID);
  if (!id) throw new UserError("netlink: no nbd family (is nbd.ko loaded?)");
  return new DataView(id.buffer, id.byteOffset, id.byteLength).getUint16(0, true);
}

export interface Attached {
  device: string;
  index: number;
  size: number;
  flags: number;
}

/** Connects to the NBD server on `socketPath` and gives the connection to /dev/nbdN. */
export function attachNbd(o: { socketPath: string; exportName?: string; index?: number; timeoutS?: number; handshakeTimeoutS?: number }): Attached {
  const handshakeS = o.handshakeTimeoutS ?? 30;
  const fd = socket(AF.UNIX, SOCK.STREAM | SOCK.CLOEXEC);
  let nl = -1;
  try {
    connect(fd, sockaddrUn(o.socketPath), `connect(${o.socketPath})`);
    // PID 1 waits on these reads with its event loop stopped: a daemon that accepted and went
    // silent must end in an error (and the shell), not a console frozen forever
    setReceiveTimeout(fd, handshakeS);
    let info: ReturnType<typeof handshake>;
    try {
      info = handshake(fd, o.exportName ?? "");
    } catch (e) {
      if (e instanceof SysError && e.errno === 11) throw new UserError(`nbd handshake with ${o.socketPath}: no answer in ${handshakeS} s`);
      throw e;
    }
    setReceiveTimeout(fd, 0); // the kernel's NBD driver has timeouts of its own: none of ours on its socket
    nl = socket(AF.NETLINK, SOCK.RAW | SOCK.CLOEXEC, NETLINK_GENERIC);
    bind(nl, new Uint8Array(12).fill(0).map((v, i) => (i === 0 ? AF.NETLINK : v)), "bind(netlink)");
    const family = nbdFamily(nl);
    // 512-byte logical blocks: iso9660 (2048) and small ext4 (1024) refuse devices with bigger ones.
    const blockSize = 512;
    const req = encodeGenlRequest(
      family, NBD_CMD.CONNECT, NBD_GENL.VERSION, seq++,
      nbdConnectAttrs({ fd, size: info.size, blockSize, serverFlags: info.flags, timeoutS: o.timeoutS ?? 300, index: o.index, identifier: "inetboot" }),
      NLM_F.REQUEST | NLM_F.ACK,
    );
    const replies = genlCall(nl, req, "netlink(NBD_CMD_CONNECT)");
    const idx = replies[0]?.attrs.get(NBD_ATTR.INDEX);
    const index = idx ? new DataView(idx.buffer, idx.byteOffset, idx.byteLength).getUint32(0, true) : (o.index ?? 0);
    return { device: `/dev/nbd${index}`, index, size: info.size, flags: info.flags };
  } finally {
    // The kernel took its own reference to the socket; ours can go.
    closeFd(fd);
    if (nl >= 0) closeFd(nl);
  }
}

/** Waits until /sys/block/nbdN reports the size (the device node is usable). */
export async function waitForDevice(index: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const f = `/sys/block/nbd${index}/size`;
  while (Date.now() < deadline) {
    if (existsSync(f) && Number(readFileSync(f, "utf8")) > 0 && existsSync(`/dev/nbd${index}`)) return;
    await Bun.sleep(20);
  }
  throw new UserError(`/dev/nbd${index}: no size after ${timeoutMs} ms`);
}
