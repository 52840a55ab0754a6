/**
 * The server's TLS options, and the grpc-js credentials they make.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { checkPem, type Pem, pemBuffer } from "../workflow/tls.ts";

/**
 * TLS for {@linkcode serve}: the server's certificate and key and, for mutual TLS, the CA
 * that signs the remotes' certificates.
 *
 * @example Mutual TLS from files
 * ```ts ignore
 * const tls: ServerTlsOptions = {
 *   cert: await Deno.readTextFile("server.crt"),
 *   key: await Deno.readTextFile("server.key"),
 *   clientCa: await Deno.readTextFile("ca.crt"),
 * };
 * ```
 */
export interface ServerTlsOptions {
  /** The server's certificate chain, PEM: its own certificate first. */
  cert: Pem;
  /** The server's private key, PEM. It is handed to TLS and never logged. */
  key: Pem;
  /**
   * The CA certificate(s), PEM, that sign the remotes' client certificates. When given, the
   * server requires mutual TLS: a remote without a certificate signed by one of them is
   * refused during the TLS handshake (the remote sees `UNAVAILABLE`). Remote certificates
   * must be X.509 v3 (see the README's "Deploying").
   */
  clientCa?: Pem;
}

/**
 * The grpc-js server credentials for `tls`: insecure without it.
 *
 * @throws {TypeError} when a field is missing or not PEM (never quoting the key).
 */
export function serverCredentials(tls: ServerTlsOptions | undefined): grpc.ServerCredentials {
  if (tls === undefined) return grpc.ServerCredentials.createInsecure();
  for (const field of ["cert", "key"] as const) checkPem(tls[field], `tls.${field}`);
  if (tls.clientCa !== undefined) checkPem(tls.clientCa, "tls.clientCa");
  // Without a client CA the roots are unused (no client certificate is asked for), but they
  // must not be left null: grpc-js then loads $GRPC_DEFAULT_SSL_ROOTS_FILE_PATH, the system
  // bundle, with which Deno's TLS server fails every handshake. Its own chain will do.
  return grpc.ServerCredentials.createSsl(
    pemBuffer(tls.clientCa ?? tls.cert),
    [{ cert_chain: pemBuffer(tls.cert), private_key: pemBuffer(tls.key) }],
    tls.clientCa !== undefined,
  );
}
