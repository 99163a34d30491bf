// Shared fixtures for store tests: a generated image with known structure.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { scratch } from "../lib/tmp.ts";

export function tmp(prefix = "ibstore-"): string {
  return scratch(prefix);
}

/** Deterministic pseudo-random bytes (xorshift32), so failures reproduce. */
export function prng(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/**
 * Image of `cs`-sized chunks: [A, zero, B, A, text, zero, B, C-tail(cs/2+7)] →
 * 8 chunks, 2 zero, unique 4 (A, B, text, C), 2 duplicates (A, B).
 */
export function makeImage(cs: number, seed = 1): Uint8Array {
  const A = prng(cs, seed);
  const B = prng(cs, seed + 100);
  const text = new TextEncoder().encode("inetboot block store ".repeat(Math.ceil(cs / 21))).subarray(0, cs);
  const C = prng(cs / 2 + 7, seed + 200);
  const Z = new Uint8Array(cs);
  const parts = [A, Z, B, A, text, Z, B, C];
  const img = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    img.set(p, o);
    o += p.length;
  }
  return img;
}

export function writeImage(dir: string, img: Uint8Array, name = "disk.img"): string {
  const p = join(dir, name);
  writeFileSync(p, img);
  return p;
}
