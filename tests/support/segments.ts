/**
 * Ways to cut the bytes a client sends into TCP segments, for tests whose verdict must not
 * depend on where the cuts fall: whole, byte by byte, and random cuts from a seeded generator
 * (so a failure names a seed that reproduces it).
 *
 * @module
 */

/** mulberry32: a small seeded generator of floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Cuts `bytes` at random places into segments of 1 to `maxSegment` bytes. */
export function randomSplit(
  bytes: Uint8Array,
  random: () => number,
  maxSegment = 16,
): Uint8Array[] {
  const parts: Uint8Array[] = [];
  for (let i = 0; i < bytes.length;) {
    const n = 1 + Math.floor(random() * maxSegment);
    parts.push(bytes.subarray(i, i + n));
    i += n;
  }
  return parts;
}

export interface Segmentation {
  name: string;
  cut(bytes: Uint8Array): Uint8Array[];
}

/** Whole, byte by byte, and `randomCount` seeded random splits. */
export function segmentations(randomCount = 2, seed = 5321): Segmentation[] {
  const out: Segmentation[] = [
    { name: "in one write", cut: (b) => [b] },
    { name: "byte by byte", cut: (b) => Array.from(b, (_, i) => b.subarray(i, i + 1)) },
  ];
  for (let i = 0; i < randomCount; i++) {
    const s = seed + i;
    out.push({ name: `in random pieces (seed ${s})`, cut: (b) => randomSplit(b, seededRandom(s)) });
  }
  return out;
}
