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
  type LocalStore,
  MemoryLocalStore,
  SQLiteLocalStore,
  type SQLiteLocalStoreOptions,
} from "./local_store.ts";
