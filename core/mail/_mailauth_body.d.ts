// Types for the one internal module of mailauth that dkim.ts uses: its streaming body
// canonicalizer. mailauth ships no declarations for it.

export interface BodyHasher {
  /** Feeds body bytes (after the blank line that ends the header section). */
  update(chunk: Uint8Array): void;
  /** The body hash (bh=) once every byte was fed. */
  digest(encoding: "base64"): string;
}

export function dkimBody(
  canonicalization: string,
  algorithm?: string,
  maxBodyLength?: number | false,
): BodyHasher;
