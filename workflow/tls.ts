/**
 * Side-neutral TLS helpers: the PEM type both sides take, and the checks both make.
 *
 * @module
 */
import { Buffer } from "node:buffer";

/** A PEM-encoded certificate, chain or key: its text, or its bytes. */
export type Pem = string | Uint8Array;

/** The bytes of a PEM, as grpc-js takes them. */
export function pemBuffer(pem: Pem): Buffer {
  return typeof pem === "string" ? Buffer.from(pem, "utf8") : Buffer.from(pem);
}

/** Checks that `pem` looks like PEM; the message names the field, never its content. */
export function checkPem(pem: unknown, field: string): void {
  const text = typeof pem === "string"
    ? pem
    : pem instanceof Uint8Array
    ? new TextDecoder().decode(pem.subarray(0, 4096))
    : undefined;
  if (text === undefined || !text.includes("-----BEGIN ")) {
    throw new TypeError(
      `${field} must be PEM text (or its bytes) containing "-----BEGIN ", not a file path: read the file first`,
    );
  }
}

/** Whether `host` (a name or an address, IPv6 with or without brackets) is a loopback one. */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  return h === "localhost" || h === "::1" || /^127\.\d+\.\d+\.\d+$/.test(h) ||
    h === "::ffff:127.0.0.1";
}

/** The host part of `host:port` (IPv6 in brackets), or the whole text when it has no port. */
export function hostOf(address: string): string {
  const bracketed = address.match(/^\[([^\]]*)\](?::\d+)?$/);
  if (bracketed) return bracketed[1];
  const colon = address.lastIndexOf(":");
  if (colon > 0 && address.indexOf(":") === colon) return address.slice(0, colon);
  return address;
}

/** Whether `host` is an IP address (v4 or v6) rather than a name. */
export function isIpAddress(host: string): boolean {
  return /^\d+\.\d+\.\d+\.\d+$/.test(host) || host.includes(":");
}
