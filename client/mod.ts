/**
 * The remote half: {@linkcode connect}.
 *
 * @example
 * ```ts ignore
 * import { connect } from "@tradeline/workflow/client";
 * import { tasks } from "./remote_tasks.ts";
 *
 * const outputs = await connect({ address: "127.0.0.1:50051", key: "greeting/alice", tasks });
 * ```
 *
 * @module
 */
export { connect, type ConnectOptions, type ReconnectOptions } from "./connect.ts";
export {
  formatReview,
  type Isolation,
  type ModuleGraph,
  type PermissionReview,
  type ReviewOptions,
  reviewPermissions,
  type SandboxOptions,
  type TaskReview,
} from "./review.ts";
export type { ClientTlsOptions, TransportOptions } from "./credentials.ts";
export type { Pem } from "../workflow/tls.ts";
export {
  type LocalStore,
  MemoryLocalStore,
  SQLiteLocalStore,
  type SQLiteLocalStoreOptions,
} from "./local_store.ts";
