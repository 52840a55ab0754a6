/**
 * How the remote reaches the server: TLS, the token or metadata it sends, message size and
 * keepalive. {@linkcode ConnectOptions} includes {@linkcode TransportOptions}.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { checkPem, hostOf, isIpAddress, isLoopback, type Pem, pemBuffer } from "../workflow/tls.ts";

/**
 * TLS for {@linkcode connect}: which CA to trust and, for mutual TLS, the remote's own
 * certificate and key.
 *
 * @example Mutual TLS, trusting only our own CA
 * ```ts ignore
 * const tls: ClientTlsOptions = {
 *   ca: await Deno.readTextFile("ca.crt"),
 *   cert: await Deno.readTextFile("agent.crt"),
 *   key: await Deno.readTextFile("agent.key"),
 * };
 * ```
 */
export interface ClientTlsOptions {
  /** The CA certificate(s), PEM, to trust for the server's certificate, instead of the
   * system's roots: pins the server to your own CA.
   *
   * @default {the system's root CAs} */
  ca?: Pem;
  /** The remote's certificate chain, PEM, for mutual TLS; an X.509 v3 certificate. */
  cert?: Pem;
  /** The remote's private key, PEM, for mutual TLS. It is handed to TLS and never logged. */
  key?: Pem;
  /**
   * The name to check the server's certificate against, when it is not the host of
   * `address`. Needed to connect to an IP address: Deno's TLS checks a host name only.
   *
   * @default {the host of `address`}
   */
  serverName?: string;
}

/**
 * The transport options of {@linkcode connect}: TLS, credentials, and limits.
 *
 * @example TLS and a bearer token
 * ```ts ignore
 * await connect({
 *   address: "workflows.example.com:50051",
 *   key: "backup/nightly",
 *   tasks,
 *   tls: { ca: await Deno.readTextFile("ca.crt") },
 *   token: Deno.env.get("WORKFLOW_TOKEN"),
 * });
 * ```
 */
export interface TransportOptions {
  /** Connect over TLS: `true` trusts the system's root CAs; an object pins a CA or adds a
   * client certificate. Without it the connection is plaintext, which is for loopback
   * development only.
   *
   * @default {false} */
  tls?: ClientTlsOptions | boolean;
  /** A bearer token, sent as `authorization: Bearer <token>` on every call (see the
   * server's `bearerTokens()`). It is never logged. */
  token?: string;
  /** More metadata (request headers) sent on every call, for an authenticator of your own. */
  metadata?: Readonly<Record<string, string>>;
  /** The largest frame the remote accepts from the server, in bytes. A remote that comes back
   * to a run receives every output of the run in one frame, so this bounds the outputs of a
   * run the remote can resume; the server's own inbound limit stays 4 MiB per frame.
   *
   * @default {67108864} (64 MiB) */
  maxMessageBytes?: number;
  /** How often the remote pings the server while a call is open, in ms, so that proxies
   * and NATs keep a long idle run's call alive. `0` sends no pings.
   *
   * @default {30000} */
  keepaliveTime?: number;
}

/** What {@linkcode clientTransport} makes: everything grpc-js needs to reach the server. */
export interface ClientTransport {
  /** The channel credentials. */
  readonly credentials: grpc.ChannelCredentials;
  /** The client options: channel options, and an interceptor that adds the metadata. */
  readonly options: grpc.ClientOptions;
}

// Printable ASCII without spaces: what an HTTP/2 header value carries safely.
const TOKEN = /^[\x21-\x7e]+$/;
const warned = new Set<string>();

/**
 * Checks the transport options of a connection to `address` and makes the grpc-js pieces.
 *
 * @throws {TypeError} naming the bad option (never quoting a token or key).
 */
export function clientTransport(address: string, options: TransportOptions): ClientTransport {
  const host = hostOf(address);
  const tls = options.tls === true ? {} : options.tls || undefined;
  const channel: grpc.ClientOptions = {
    "grpc.max_receive_message_length": positive(
      options.maxMessageBytes,
      64 * 1024 * 1024,
      "maxMessageBytes",
    ),
  };
  const keepalive = options.keepaliveTime ?? 30_000;
  if (!Number.isInteger(keepalive) || keepalive < 0) {
    throw new TypeError(`Cannot connect: keepaliveTime must be an integer of 0 or more`);
  }
  if (keepalive > 0) {
    channel["grpc.keepalive_time_ms"] = keepalive;
    channel["grpc.keepalive_timeout_ms"] = 10_000;
  }
  let credentials = grpc.credentials.createInsecure();
  if (tls) {
    if ((tls.cert === undefined) !== (tls.key === undefined)) {
      throw new TypeError("Cannot connect: tls.cert and tls.key go together, for mutual TLS");
    }
    for (const field of ["ca", "cert", "key"] as const) {
      if (tls[field] !== undefined) checkPem(tls[field], `tls.${field}`);
    }
    if (tls.serverName !== undefined) {
      channel["grpc.ssl_target_name_override"] = tls.serverName;
    } else if (isIpAddress(host)) {
      throw new TypeError(
        `Cannot connect to ${address} over TLS by IP address: Deno's TLS checks a host name. Connect by a name in the server's certificate, or pass tls.serverName`,
      );
    }
    credentials = grpc.credentials.createSsl(
      tls.ca === undefined ? null : pemBuffer(tls.ca),
      tls.key === undefined ? null : pemBuffer(tls.key),
      tls.cert === undefined ? null : pemBuffer(tls.cert),
    );
  }
  const headers: [string, string][] = [];
  if (options.token !== undefined) {
    if (typeof options.token !== "string" || !TOKEN.test(options.token)) {
      throw new TypeError(
        "Cannot connect: the token must be printable ASCII without spaces (it is not shown here)",
      );
    }
    headers.push(["authorization", `Bearer ${options.token}`]);
  }
  for (const [name, value] of Object.entries(options.metadata ?? {})) {
    const lower = name.toLowerCase();
    if (!/^[0-9a-z_.-]+$/.test(lower) || lower.endsWith("-bin") || lower.startsWith("grpc-")) {
      throw new TypeError(`Cannot connect: metadata name "${name}" is not a valid header name`);
    }
    if (typeof value !== "string" || !/^[\x20-\x7e]*$/.test(value)) {
      throw new TypeError(
        `Cannot connect: the value of metadata "${name}" must be printable ASCII (it is not shown here)`,
      );
    }
    headers.push([lower, value]);
  }
  if (!tls && headers.length > 0 && !isLoopback(host) && !warned.has(address)) {
    warned.add(address);
    console.warn(
      `workflow remote: WARNING: sending credentials to ${address} without TLS: anyone on the network can read them. Pass connect({ tls }) (see "Deploying" in the README)`,
    );
  }
  if (headers.length > 0) {
    channel.interceptors = [
      (callOptions, nextCall) =>
        new grpc.InterceptingCall(nextCall(callOptions), {
          start(metadata, listener, next) {
            for (const [name, value] of headers) metadata.set(name, value);
            next(metadata, listener);
          },
        }),
    ];
  }
  return { credentials, options: channel };
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > 2 ** 31 - 1) {
    throw new TypeError(`Cannot connect: ${name} must be an integer from 1 to ${2 ** 31 - 1}`);
  }
  return value;
}
