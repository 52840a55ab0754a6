/**
 * Authentication: who is at the other end of a call. An {@linkcode Authenticator} maps a
 * call (its metadata, and its client certificate under mutual TLS) to a principal, or
 * refuses it; {@linkcode bearerTokens} and {@linkcode clientCertificates} are the built-in
 * ones.
 *
 * A principal owns the runs it starts. Workflow keys are scoped per principal: the run a
 * remote reaches with key `k` is the run its own principal started with `k`, so another
 * principal can neither reach it nor learn that it exists (see {@linkcode scopedKey}).
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { PeerCertificate } from "node:tls";
import type * as grpc from "@grpc/grpc-js";
import { ErrorCode, WorkflowError } from "../workflow/errors.ts";

/** A verified client certificate, as an {@linkcode Authenticator} sees it under mutual TLS. */
export interface ClientCertificate {
  /** The subject's attributes: `CN`, `O`, `OU`, ...; a list where one occurs several times. */
  readonly subject: Readonly<Record<string, string | readonly string[]>>;
  /** The issuer's attributes. */
  readonly issuer: Readonly<Record<string, string | readonly string[]>>;
  /** The subject alternative names, as OpenSSL prints them: `DNS:agent-1`, `URI:spiffe://...`. */
  readonly subjectAltNames: readonly string[];
  /** The SHA-256 fingerprint, as colon-separated hex. */
  readonly fingerprint256: string;
  /** The serial number, in hex. */
  readonly serialNumber: string;
  /** When the certificate stops being valid. */
  readonly validTo: Date;
}

/** What an {@linkcode Authenticator} knows about a call. */
export interface CallInfo {
  /** The call's metadata (request headers), for example `authorization`. Binary (`-bin`)
   * entries are left out. */
  readonly headers: Headers;
  /** The client's address, `ip:port`. */
  readonly peer: string;
  /** The client's certificate, verified against the server's `tls.clientCa`, under mutual
   * TLS; `undefined` otherwise. */
  readonly certificate?: ClientCertificate;
}

/**
 * Maps a call to the principal that makes it (a non-empty name, at most 256 characters), or
 * refuses it: return `undefined` or throw, and the call ends with `UNAUTHENTICATED` before
 * any of its frames is read. Throw a {@linkcode WorkflowError} to choose its message (it is
 * sent to the client, so never put a secret in it) or its code (`PermissionDenied`).
 *
 * @example An authenticator of your own: tokens checked by another service
 * ```ts ignore
 * const authenticate: Authenticator = async ({ headers }) => {
 *   const token = headers.get("authorization")?.replace(/^Bearer /i, "");
 *   return token ? await lookUpAgent(token) : undefined; // the agent's name, or undefined
 * };
 * await serve({ workflows, tls, authenticate });
 * ```
 */
export type Authenticator = (
  call: CallInfo,
) => string | undefined | Promise<string | undefined>;

/**
 * An {@linkcode Authenticator} that accepts bearer tokens: each principal has its token, and
 * a client sends `authorization: Bearer <token>` (what `connect({ token })` does). Tokens are
 * compared in constant time, and never logged.
 *
 * @example Two agents, each with its own token
 * ```ts ignore
 * import { bearerTokens, serve } from "@tradeline/workflow/server";
 *
 * await serve({
 *   workflows,
 *   tls,
 *   authenticate: bearerTokens({
 *     "agent-eu": Deno.env.get("AGENT_EU_TOKEN")!,
 *     "agent-us": Deno.env.get("AGENT_US_TOKEN")!,
 *   }),
 * });
 * ```
 *
 * @param tokens The token of each principal, by principal; each at least 16 characters
 * (make one with `openssl rand -base64 32`).
 * @returns The authenticator.
 * @throws {RangeError} when a token is too short or two principals share a token.
 */
export function bearerTokens(tokens: Readonly<Record<string, string>>): Authenticator {
  const entries = Object.entries(tokens).map(([principal, token]) => {
    checkPrincipal(principal, "Cannot use bearerTokens()");
    if (typeof token !== "string" || token.length < 16) {
      throw new RangeError(
        `Cannot use bearerTokens(): the token of principal "${principal}" must be a string of 16 characters or more`,
      );
    }
    return { principal, digest: digest(token) };
  });
  if (entries.length === 0) throw new RangeError("Cannot use bearerTokens(): no tokens given");
  for (let i = 1; i < entries.length; i++) {
    if (entries.slice(0, i).some((e) => timingSafeEqual(e.digest, entries[i].digest))) {
      throw new RangeError(
        `Cannot use bearerTokens(): principal "${
          entries[i].principal
        }" has the same token as another one`,
      );
    }
  }
  return ({ headers }) => {
    const token = parseBearer(headers.get("authorization"));
    if (token === undefined) {
      throw new WorkflowError(
        ErrorCode.Unauthenticated,
        "The call carries no bearer token; pass connect({ token })",
      );
    }
    const presented = digest(token);
    let principal: string | undefined;
    // Every entry is compared, so the time taken does not tell which one matched.
    for (const entry of entries) {
      if (timingSafeEqual(presented, entry.digest)) principal ??= entry.principal;
    }
    if (principal === undefined) {
      throw new WorkflowError(ErrorCode.Unauthenticated, "The bearer token is not valid");
    }
    return principal;
  };
}

/** Options of {@linkcode clientCertificates}. */
export interface ClientCertificatesOptions {
  /**
   * The principal a certificate stands for; `undefined` refuses it.
   *
   * @default {the subject's common name (`CN`), when it has exactly one}
   */
  principal?: (certificate: ClientCertificate) => string | undefined;
}

/**
 * An {@linkcode Authenticator} for mutual TLS: the principal is named by the client's
 * certificate (its subject's common name, unless `principal` says otherwise). The server
 * must verify client certificates, with `tls.clientCa`.
 *
 * @example The principal from a SPIFFE ID in the certificate
 * ```ts ignore
 * import { clientCertificates, serve } from "@tradeline/workflow/server";
 *
 * await serve({
 *   workflows,
 *   tls: { cert, key, clientCa },
 *   authenticate: clientCertificates({
 *     principal: (cert) => cert.subjectAltNames.find((n) => n.startsWith("URI:spiffe://")),
 *   }),
 * });
 * ```
 *
 * @param options How to name the principal.
 * @returns The authenticator.
 */
export function clientCertificates(options: ClientCertificatesOptions = {}): Authenticator {
  const name = options.principal ?? ((certificate) => {
    const cn = certificate.subject.CN;
    return typeof cn === "string" ? cn : undefined;
  });
  return ({ certificate }) => {
    if (!certificate) {
      throw new WorkflowError(
        ErrorCode.Unauthenticated,
        "The call carries no verified client certificate; the server needs tls.clientCa",
      );
    }
    return name(certificate);
  };
}

/**
 * The key under which the run a principal reaches with `key` is stored: `key` itself without
 * a principal, and `principal:key` (the principal percent-encoded, so that no two scoped keys
 * collide) with one. Use it to look a run up with `server.run()`.
 *
 * @example
 * ```ts
 * import { scopedKey } from "@tradeline/workflow/server";
 *
 * scopedKey("agent-eu", "backup/nightly"); // "agent-eu:backup/nightly"
 * scopedKey(undefined, "backup/nightly"); // "backup/nightly"
 * ```
 *
 * @param principal The principal, or `undefined` without authentication.
 * @param key The workflow key the remote sent.
 * @returns The key of the run in the store.
 */
export function scopedKey(principal: string | undefined, key: string): string {
  return principal === undefined ? key : `${encodeURIComponent(principal)}:${key}`;
}

/** The one answer to a principal that reaches a run it does not own. */
export function notAccessible(key: string, principal: string | undefined): WorkflowError {
  return new WorkflowError(
    ErrorCode.PermissionDenied,
    `Run "${key}" is not accessible to ${
      principal === undefined ? "an unauthenticated remote" : `principal "${principal}"`
    }; use a workflow key of your own`,
    { key },
  );
}

/**
 * Authenticates a call: resolves with its principal (`undefined` without an authenticator).
 *
 * @throws {WorkflowError} `Unauthenticated` (or the authenticator's own `PermissionDenied`).
 */
export async function authenticateCall(
  call: grpc.ServerDuplexStream<unknown, unknown>,
  authenticate: Authenticator | undefined,
): Promise<string | undefined> {
  if (!authenticate) return undefined;
  let principal: string | undefined;
  try {
    principal = await authenticate(callInfo(call));
  } catch (error) {
    if (
      error instanceof WorkflowError &&
      (error.code === ErrorCode.Unauthenticated || error.code === ErrorCode.PermissionDenied)
    ) throw error;
    // Any other error may carry what the client sent: it is not echoed back.
    throw new WorkflowError(ErrorCode.Unauthenticated, "The call could not be authenticated");
  }
  if (principal === undefined) {
    throw new WorkflowError(ErrorCode.Unauthenticated, "The call could not be authenticated");
  }
  try {
    return checkPrincipal(principal, "Cannot authenticate the call");
  } catch {
    throw new WorkflowError(
      ErrorCode.Internal,
      "The server's authenticator returned a principal that is not a name of 1 to 256 characters",
    );
  }
}

function callInfo(call: grpc.ServerDuplexStream<unknown, unknown>): CallInfo {
  const headers = new Headers();
  for (const [name, values] of Object.entries(call.metadata.getMap())) {
    if (name.endsWith("-bin") || typeof values !== "string") continue;
    try {
      headers.set(name, values);
    } catch { /* not a header value a client could mean */ }
  }
  let peer = "unknown peer";
  let certificate: ClientCertificate | undefined;
  try {
    peer = call.getPeer();
    const context = call.getAuthContext();
    if (context.sslPeerCertificate) certificate = toCertificate(context.sslPeerCertificate);
  } catch { /* the call is already gone */ }
  return { headers, peer, certificate };
}

function toCertificate(cert: PeerCertificate): ClientCertificate {
  return Object.freeze({
    subject: attributes(cert.subject),
    issuer: attributes(cert.issuer),
    subjectAltNames: Object.freeze(
      (cert.subjectaltname ?? "").split(",").map((name) => name.trim()).filter(Boolean),
    ),
    fingerprint256: cert.fingerprint256,
    serialNumber: cert.serialNumber,
    validTo: new Date(cert.valid_to),
  });
}

function attributes(
  names: PeerCertificate["subject"] | undefined,
): Readonly<Record<string, string | readonly string[]>> {
  const out: Record<string, string | readonly string[]> = {};
  for (const [name, value] of Object.entries(names ?? {})) {
    if (typeof value === "string") out[name] = value;
    else if (Array.isArray(value)) out[name] = Object.freeze([...value]);
  }
  return Object.freeze(out);
}

// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function checkPrincipal(principal: unknown, where: string): string {
  if (
    typeof principal !== "string" || principal.length === 0 || principal.length > 256 ||
    CONTROL.test(principal)
  ) {
    throw new RangeError(`${where}: a principal must be a name of 1 to 256 characters`);
  }
  return principal;
}

function parseBearer(header: string | null): string | undefined {
  const match = header?.match(/^\s*Bearer\s+(\S+)\s*$/i);
  return match?.[1];
}

/** A fixed-length digest, so that tokens of any length compare in constant time. */
function digest(token: string): Uint8Array {
  return createHash("sha256").update(token, "utf8").digest();
}
