/**
 * The server half: {@linkcode serve} and the run stores.
 *
 * @example
 * ```ts ignore
 * import { serve } from "@tradeline/workflow/server";
 * import { tasks } from "./server_tasks.ts";
 *
 * await using server = await serve({ workflows: tasks, port: 0 });
 * console.log(`listening on ${server.address}`);
 * ```
 *
 * @module
 */
export { serve, type ServeOptions, WorkflowServer } from "./serve.ts";
export { type ListOptions, MemoryStore, type RunStore } from "./store.ts";
export type { SubscribeOptions } from "./events.ts";
export { SQLiteStore, type SQLiteStoreOptions } from "./sqlite_store.ts";
export {
  type Authenticator,
  bearerTokens,
  type CallInfo,
  type ClientCertificate,
  clientCertificates,
  type ClientCertificatesOptions,
  scopedKey,
} from "./auth.ts";
export type { ServerTlsOptions } from "./credentials.ts";
export { DEFAULT_LIMITS, type ServerLimits } from "./limits.ts";
export type { Pem } from "../workflow/tls.ts";
