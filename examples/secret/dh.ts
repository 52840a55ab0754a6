/**
 * Diffie-Hellman over the 2048-bit MODP group 14 of RFC 3526, with `bigint`.
 *
 * @module
 */

/** The prime of RFC 3526 group 14 (2048 bits). */
export const P = BigInt(
  "0x" +
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1" +
    "29024E088A67CC74020BBEA63B139B22514A08798E3404DD" +
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245" +
    "E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED" +
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D" +
    "C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F" +
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D" +
    "670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B" +
    "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9" +
    "DE2BCBF6955817183995497CEA956AE515D2261898FA0510" +
    "15728E5A8AACAA68FFFFFFFFFFFFFFFF",
);

/** The generator of group 14. */
export const G = 2n;

/** `base ** exponent % modulus`, by square-and-multiply. */
export function modPow(base: bigint, exponent: bigint, modulus: bigint): bigint {
  if (modulus === 1n) return 0n;
  let result = 1n;
  base %= modulus;
  while (exponent > 0n) {
    if (exponent & 1n) result = (result * base) % modulus;
    exponent >>= 1n;
    base = (base * base) % modulus;
  }
  return result;
}

/** A secret exponent from `crypto.getRandomValues`, in [2, P - 2]. */
export function randomExponent(): bigint {
  const bytes = crypto.getRandomValues(new Uint8Array(256));
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return (BigInt(`0x${hex}`) % (P - 3n)) + 2n;
}

/** Checks that a peer's public value is in range, so a malicious peer cannot force a weak secret. */
export function checkPublic(value: bigint): bigint {
  if (typeof value !== "bigint" || value < 2n || value > P - 2n) {
    throw new RangeError("The peer's public value is out of range");
  }
  return value;
}

/** HMAC-SHA-256 of `label`, keyed with the shared secret: proves holding it without sending it. */
export async function prove(secret: bigint, label: string): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret.toString(16)),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(label)));
}

/** Checks the other side's proof in constant time. */
export async function verify(secret: bigint, label: string, proof: Uint8Array): Promise<boolean> {
  const key = await crypto.subtle.importKey(
    "raw",
    new TextEncoder().encode(secret.toString(16)),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["verify"],
  );
  return await crypto.subtle.verify(
    "HMAC",
    key,
    new Uint8Array(proof),
    new TextEncoder().encode(label),
  );
}

/** A short, safe-to-print fingerprint of the secret (SHA-256, first 8 bytes). */
export async function secretFingerprint(secret: bigint): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(secret.toString(16)),
  );
  return Array.from(new Uint8Array(digest).slice(0, 8), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}
