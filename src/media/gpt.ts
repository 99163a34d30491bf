// GUID partition table codec (UEFI spec, "GUID Partition Table Disk Layout"): protective MBR,
// primary header + entry array at the start, backup entry array + header at the end. Pure: it
// returns the byte regions to write; usb.ts writes them. 512-byte sectors only (USB sticks, images).

export const SECTOR = 512;
const ENTRY_SIZE = 128;
const ENTRY_COUNT = 128;
const ENTRY_SECTORS = (ENTRY_SIZE * ENTRY_COUNT) / SECTOR; // 32
const HEADER_SIZE = 92;

export const GPT_TYPE = {
  /** EFI system partition */
  esp: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
  /** GRUB's BIOS boot partition: raw core.img, no filesystem */
  biosBoot: "21686148-6E69-6E6F-7461-656E65656646",
} as const;

export interface GptPartition {
  type: string;
  guid: string;
  firstLba: number;
  /** inclusive */
  lastLba: number;
  name: string;
  attributes?: bigint;
}

export interface GptLayout {
  diskGuid: string;
  /** whole disk in sectors */
  sectors: number;
  partitions: GptPartition[];
}

/** First and last LBA partitions may use on a disk of `sectors` sectors. */
export function usableRange(sectors: number): { first: number; last: number } {
  return { first: 2 + ENTRY_SECTORS, last: sectors - 2 - ENTRY_SECTORS };
}

/** GUID text → 16 bytes, mixed endian (first three fields little-endian, as GPT stores them). */
export function guidBytes(guid: string): Uint8Array {
  const m = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i.exec(guid);
  if (!m) throw new Error(`bad GUID "${guid}"`);
  const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((b) => parseInt(b, 16)));
  return Uint8Array.from([...hex(m[1]!).reverse(), ...hex(m[2]!).reverse(), ...hex(m[3]!).reverse(), ...hex(m[4]!), ...hex(m[5]!)]);
}

export function guidText(b: Uint8Array): string {
  const h = (a: Uint8Array) => [...a].map((x) => x.toString(16).padStart(2, "0")).join("");
  const r = (s: number, e: number) => h(b.slice(s, e).reverse());
  return `${r(0, 4)}-${r(4, 6)}-${r(6, 8)}-${h(b.slice(8, 10))}-${h(b.slice(10, 16))}`.toUpperCase();
}

export function randomGuid(): string {
  return crypto.randomUUID().toUpperCase();
}

export function crc32(data: Uint8Array): number {
  return Bun.hash.crc32(data) >>> 0;
}

/** Protective MBR partition table + signature (bytes 446..511 of LBA 0); boot code is left alone. */
export function protectiveMbrTail(sectors: number): Uint8Array {
  const t = new Uint8Array(SECTOR - 446);
  const v = new DataView(t.buffer);
  t.set([0x00, 0x00, 0x02, 0x00, 0xee, 0xff, 0xff, 0xff], 0); // not active; CHS 0/0/2 .. max; type EE
  v.setUint32(8, 1, true);
  v.setUint32(12, Math.min(sectors - 1, 0xffffffff), true);
  t[64] = 0x55;
  t[65] = 0xaa;
  return t;
}

function encodeEntries(parts: GptPartition[]): Uint8Array {
  if (parts.length > ENTRY_COUNT) throw new Error(`at most ${ENTRY_COUNT} partitions`);
  const a = new Uint8Array(ENTRY_SIZE * ENTRY_COUNT);
  const v = new DataView(a.buffer);
  parts.forEach((p, i) => {
    const o = i * ENTRY_SIZE;
    a.set(guidBytes(p.type), o);
    a.set(guidBytes(p.guid), o + 16);
    v.setBigUint64(o + 32, BigInt(p.firstLba), true);
    v.setBigUint64(o + 40, BigInt(p.lastLba), true);
    v.setBigUint64(o + 48, p.attributes ?? 0n, true);
    if (p.name.length > 36) throw new Error(`partition name "${p.name}" longer than 36 characters`);
    for (let j = 0; j < p.name.length; j++) v.setUint16(o + 56 + 2 * j, p.name.charCodeAt(j), true);
  });
  return a;
}

function encodeHeader(l: GptLayout, myLba: number, altLba: number, entriesLba: number, entriesCrc: number): Uint8Array {
  const h = new Uint8Array(SECTOR);
  const v = new DataView(h.buffer);
  h.set(new TextEncoder().encode("EFI PART"), 0);
  v.setUint32(8, 0x00010000, true);
  v.setUint32(12, HEADER_SIZE, true);
  v.setBigUint64(24, BigInt(myLba), true);
  v.setBigUint64(32, BigInt(altLba), true);
  const { first, last } = usableRange(l.sectors);
  v.setBigUint64(40, BigInt(first), true);
  v.setBigUint64(48, BigInt(last), true);
  h.set(guidBytes(l.diskGuid), 56);
  v.setBigUint64(72, BigInt(entriesLba), true);
  v.setUint32(80, ENTRY_COUNT, true);
  v.setUint32(84, ENTRY_SIZE, true);
  v.setUint32(88, entriesCrc, true);
  v.setUint32(16, crc32(h.subarray(0, HEADER_SIZE)), true); // computed with its own field zero
  return h;
}

export interface DiskWrite {
  /** byte offset */
  offset: number;
  data: Uint8Array;
}

/** Everything a GPT needs on disk: MBR tail, primary header + entries, backup entries + header. */
export function encodeGpt(l: GptLayout): DiskWrite[] {
  const { first, last } = usableRange(l.sectors);
  if (l.sectors < 2 * (2 + ENTRY_SECTORS) + 1) throw new Error(`disk of ${l.sectors} sectors is too small for a GPT`);
  const sorted = [...l.partitions].sort((a, b) => a.firstLba - b.firstLba);
  sorted.forEach((p, i) => {
    if (p.firstLba < first || p.lastLba > last || p.lastLba < p.firstLba)
      throw new Error(`partition "${p.name}" (${p.firstLba}..${p.lastLba}) outside usable sectors ${first}..${last}`);
    const prev = sorted[i - 1];
    if (prev && prev.lastLba >= p.firstLba) throw new Error(`partitions "${prev.name}" and "${p.name}" overlap`);
  });
  const entries = encodeEntries(l.partitions);
  const ecrc = crc32(entries);
  const lastLba = l.sectors - 1;
  const backupEntries = lastLba - ENTRY_SECTORS;
  return [
    { offset: 446, data: protectiveMbrTail(l.sectors) },
    { offset: SECTOR, data: encodeHeader(l, 1, lastLba, 2, ecrc) },
    { offset: 2 * SECTOR, data: entries },
    { offset: backupEntries * SECTOR, data: entries },
    { offset: lastLba * SECTOR, data: encodeHeader(l, lastLba, 1, backupEntries, ecrc) },
  ];
}

/** Reads the primary GPT back from the first 34 sectors (tests, and `usb` checks its own work). */
export function decodeGpt(head: Uint8Array): { diskGuid: string; partitions: GptPartition[]; altLba: number } {
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (new TextDecoder().decode(head.subarray(SECTOR, SECTOR + 8)) !== "EFI PART") throw new Error("no GPT header at LBA 1");
  const hdr = head.slice(SECTOR, SECTOR + HEADER_SIZE);
  const want = new DataView(hdr.buffer).getUint32(16, true);
  new DataView(hdr.buffer).setUint32(16, 0, true);
  if (crc32(hdr) !== want) throw new Error("GPT header checksum mismatch");
  const entries = head.subarray(2 * SECTOR, 2 * SECTOR + ENTRY_SIZE * ENTRY_COUNT);
  if (crc32(entries) !== v.getUint32(SECTOR + 88, true)) throw new Error("GPT entry array checksum mismatch");
  const partitions: GptPartition[] = [];
  const ev = new DataView(entries.buffer, entries.byteOffset, entries.byteLength);
  for (let i = 0; i < ENTRY_COUNT; i++) {
    const o = i * ENTRY_SIZE;
    const type = entries.subarray(o, o + 16);
    if (type.every((b) => b === 0)) continue;
    let name = "";
    for (let j = 0; j < 36; j++) {
      const c = ev.getUint16(o + 56 + 2 * j, true);
      if (!c) break;
      name += String.fromCharCode(c);
    }
    partitions.push({
      type: guidText(type),
      guid: guidText(entries.subarray(o + 16, o + 32)),
      firstLba: Number(ev.getBigUint64(o + 32, true)),
      lastLba: Number(ev.getBigUint64(o + 40, true)),
      attributes: ev.getBigUint64(o + 48, true),
      name,
    });
  }
  return { diskGuid: guidText(head.subarray(SECTOR + 56, SECTOR + 72)), partitions, altLba: Number(v.getBigUint64(SECTOR + 32, true)) };
}
