// Pack throughput on a realistic image: an ext4 filesystem holding /usr/bin (~300 MB of ELF files
// in a 448 MiB image, built once and cached in build/bench/). Prints MB/s for a fresh pack, for
// re-packing into the same store (all chunks deduplicated), and, as a peer measured in the same
// run, the zstd CLI compressing the same image with -1 on both cores.
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { packImage } from "../src/store/pack.ts";

const root = join(import.meta.dir, "..");
const img = join(root, "build/bench/usr-bin.ext4");
if (!existsSync(img)) {
  mkdirSync(join(root, "build/bench"), { recursive: true });
  console.error("building", img, "(mkfs.ext4 -d /usr/bin)…");
  const r = Bun.spawnSync(["mkfs.ext4", "-q", "-F", "-d", "/usr/bin", img, "448M"], { stderr: "inherit" });
  if (r.exitCode !== 0) throw new Error("mkfs.ext4 failed");
}
const size = Bun.file(img).size;
// Read it once so every run below starts from the page cache.
await Bun.file(img).arrayBuffer();

const store = join(tmpdir(), `ibbench-store-${process.pid}`);
rmSync(store, { recursive: true, force: true });
for (const [label, level] of [["fresh pack (level 2)", 2], ["re-pack (all dedup)", 2]] as const) {
  const t0 = performance.now();
  const r = await packImage(img, store, { level });
  const s = (performance.now() - t0) / 1000;
  console.log(
    `${label}: ${(size / 1e6 / s).toFixed(0)} MB/s  (${r.chunks} chunks, ${r.stored} stored, ${r.deduplicated} dedup, ${r.zero} zero, ratio ${(r.newPlainBytes / Math.max(1, r.newStoredBytes)).toFixed(2)})`,
  );
}
rmSync(store, { recursive: true, force: true });

if (Bun.which("zstd")) {
  const t0 = performance.now();
  const z = Bun.spawnSync(["zstd", "-1", "-T2", "-q", "-c", img], { stdout: "ignore" });
  const s = (performance.now() - t0) / 1000;
  if (z.exitCode === 0) console.log(`peer: zstd -1 -T2 whole image: ${(size / 1e6 / s).toFixed(0)} MB/s`);
}
