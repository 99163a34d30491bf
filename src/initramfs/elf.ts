// Minimal ELF64 little-endian reader: what the initramfs builder needs to know about a file —
// its program interpreter and DT_NEEDED libraries (executables, shared objects) and named sections
// (a kernel module's .modinfo). It reads through a `ReadAt` callback so a 110 MB executable is
// never loaded whole: only headers and the dynamic string table are read.
import { closeSync, openSync, readSync, fstatSync } from "node:fs";

/** Read `len` bytes at `off` (fewer only at end of file). */
export type ReadAt = (off: number, len: number) => Uint8Array;

export const PT_LOAD = 1;
export const PT_DYNAMIC = 2;
export const PT_INTERP = 3;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_STRSZ = 10;
const DT_SONAME = 14;
const DT_RPATH = 15;
const DT_RUNPATH = 29;

export interface ProgramHeader {
  type: number;
  flags: number;
  offset: number;
  vaddr: number;
  filesz: number;
  memsz: number;
}

export interface SectionHeader {
  name: string;
  type: number;
  offset: number;
  size: number;
}

export interface ElfInfo {
  /** ET_EXEC=2, ET_DYN=3, ET_REL=1 (kernel modules). */
  type: number;
  /** e_machine: 62 = x86-64. */
  machine: number;
  interp?: string;
  needed: string[];
  soname?: string;
  rpath: string[];
  runpath: string[];
  phdrs: ProgramHeader[];
}

const dec = new TextDecoder();

function u64(v: DataView, o: number): number {
  const n = v.getBigUint64(o, true);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`ELF: 64-bit value too large at ${o}`);
  return Number(n);
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function cstr(b: Uint8Array, at: number): string {
  let end = at;
  while (end < b.length && b[end] !== 0) end++;
  return dec.decode(b.subarray(at, end));
}

interface Ehdr {
  type: number;
  machine: number;
  phoff: number;
  shoff: number;
  phentsize: number;
  phnum: number;
  shentsize: number;
  shnum: number;
  shstrndx: number;
}

function readEhdr(read: ReadAt, what: string): Ehdr {
  const h = read(0, 64);
  if (h.length < 64 || h[0] !== 0x7f || h[1] !== 0x45 || h[2] !== 0x4c || h[3] !== 0x46) throw new Error(`${what}: not an ELF file`);
  if (h[4] !== 2) throw new Error(`${what}: not a 64-bit ELF file`);
  if (h[5] !== 1) throw new Error(`${what}: not a little-endian ELF file`);
  const v = view(h);
  return {
    type: v.getUint16(16, true),
    machine: v.getUint16(18, true),
    phoff: u64(v, 32),
    shoff: u64(v, 40),
    phentsize: v.getUint16(54, true),
    phnum: v.getUint16(56, true),
    shentsize: v.getUint16(58, true),
    shnum: v.getUint16(60, true),
    shstrndx: v.getUint16(62, true),
  };
}

function readPhdrs(read: ReadAt, e: Ehdr): ProgramHeader[] {
  if (e.phnum === 0) return [];
  const b = read(e.phoff, e.phentsize * e.phnum);
  const v = view(b);
  const out: ProgramHeader[] = [];
  for (let i = 0; i < e.phnum; i++) {
    const o = i * e.phentsize;
    if (o + 56 > b.length) throw new Error("ELF: program headers truncated");
    out.push({
      type: v.getUint32(o, true),
      flags: v.getUint32(o + 4, true),
      offset: u64(v, o + 8),
      vaddr: u64(v, o + 16),
      filesz: u64(v, o + 32),
      memsz: u64(v, o + 40),
    });
  }
  return out;
}

/** File offset of a virtual address, through the PT_LOAD segment that maps it. */
export function vaddrToOffset(phdrs: ProgramHeader[], vaddr: number): number {
  for (const p of phdrs) {
    if (p.type === PT_LOAD && vaddr >= p.vaddr && vaddr < p.vaddr + p.filesz) return p.offset + (vaddr - p.vaddr);
  }
  throw new Error(`ELF: address 0x${vaddr.toString(16)} is in no PT_LOAD segment`);
}

/** Parse program headers, interpreter and dynamic section. */
export function parseElf(read: ReadAt, what = "ELF"): ElfInfo {
  const e = readEhdr(read, what);
  const phdrs = readPhdrs(read, e);
  const info: ElfInfo = { type: e.type, machine: e.machine, needed: [], rpath: [], runpath: [], phdrs };
  const interp = phdrs.find((p) => p.type === PT_INTERP);
  if (interp) info.interp = cstr(read(interp.offset, interp.filesz), 0);
  const dyn = phdrs.find((p) => p.type === PT_DYNAMIC);
  if (!dyn) return info;
  const d = read(dyn.offset, dyn.filesz);
  const dv = view(d);
  let strtab = -1;
  let strsz = 0;
  const needed: number[] = [];
  const rpath: number[] = [];
  const runpath: number[] = [];
  let soname = -1;
  for (let o = 0; o + 16 <= d.length; o += 16) {
    const tag = Number(dv.getBigInt64(o, true));
    const val = u64(dv, o + 8);
    if (tag === DT_NULL) break;
    if (tag === DT_NEEDED) needed.push(val);
    else if (tag === DT_STRTAB) strtab = val;
    else if (tag === DT_STRSZ) strsz = val;
    else if (tag === DT_SONAME) soname = val;
    else if (tag === DT_RPATH) rpath.push(val);
    else if (tag === DT_RUNPATH) runpath.push(val);
  }
  if (strtab < 0) {
    if (needed.length) throw new Error(`${what}: DT_NEEDED without DT_STRTAB`);
    return info;
  }
  // DT_STRTAB holds a virtual address; the bytes live where a PT_LOAD maps it.
  const strs = read(vaddrToOffset(phdrs, strtab), strsz);
  info.needed = needed.map((i) => cstr(strs, i));
  if (soname >= 0) info.soname = cstr(strs, soname);
  const split = (i: number) => cstr(strs, i).split(":").filter(Boolean);
  info.rpath = rpath.flatMap(split);
  info.runpath = runpath.flatMap(split);
  return info;
}

/** All section headers with their names. */
export function readSections(read: ReadAt, what = "ELF"): SectionHeader[] {
  const e = readEhdr(read, what);
  if (e.shnum === 0 || e.shoff === 0) return [];
  const b = read(e.shoff, e.shentsize * e.shnum);
  const v = view(b);
  const raw = [];
  for (let i = 0; i < e.shnum; i++) {
    const o = i * e.shentsize;
    if (o + 64 > b.length) throw new Error(`${what}: section headers truncated`);
    raw.push({ nameOff: v.getUint32(o, true), type: v.getUint32(o + 4, true), offset: u64(v, o + 24), size: u64(v, o + 32) });
  }
  const shstr = raw[e.shstrndx];
  const names = shstr ? read(shstr.offset, shstr.size) : new Uint8Array(0);
  return raw.map((s) => ({ name: cstr(names, s.nameOff), type: s.type, offset: s.offset, size: s.size }));
}

/** Contents of the named section, or undefined when there is none. */
export function readSection(read: ReadAt, name: string, what = "ELF"): Uint8Array | undefined {
  const s = readSections(read, what).find((x) => x.name === name);
  return s ? read(s.offset, s.size) : undefined;
}

/** A `.modinfo` section as key/value pairs in file order (keys repeat: alias=, depends= ...). */
export function parseModinfo(sec: Uint8Array): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const s of dec.decode(sec).split("\0")) {
    if (!s) continue; // padding between strings
    const eq = s.indexOf("=");
    if (eq > 0) out.push([s.slice(0, eq), s.slice(eq + 1)]);
  }
  return out;
}

/** A ReadAt over bytes in memory. */
export function bytesReader(b: Uint8Array): ReadAt {
  return (off, len) => b.subarray(Math.min(off, b.length), Math.min(off + len, b.length));
}

/** Run `fn` with a ReadAt over a file on disk (reads only what `fn` asks for). */
export function withFileReader<T>(path: string, fn: (read: ReadAt, size: number) => T): T {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    const read: ReadAt = (off, len) => {
      const n = Math.max(0, Math.min(len, size - off));
      const b = new Uint8Array(n);
      let got = 0;
      while (got < n) {
        const r = readSync(fd, b, got, n - got, off + got);
        if (r <= 0) break;
        got += r;
      }
      return b.subarray(0, got);
    };
    return fn(read, size);
  } finally {
    closeSync(fd);
  }
}

/** True if the file starts with the ELF magic. */
export function isElfFile(path: string): boolean {
  try {
    return withFileReader(path, (read) => {
      const h = read(0, 4);
      return h.length === 4 && h[0] === 0x7f && h[1] === 0x45 && h[2] === 0x4c && h[3] === 0x46;
    });
  } catch {
    return false;
  }
}
