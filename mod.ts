/**
 * Remote workflows for Deno: declare a workflow as an ordered list of typed tasks, some run
 * by a server and some by remote agents that dial in over one gRPC stream.
 *
 * @example A definition, shared by both sides
 * ```ts
 * import { defineWorkflow, remoteTasks, returns, serverTasks } from "@tradeline/workflow";
 *
 * const greeting = defineWorkflow("greeting", { version: 1 })
 *   .remote("hostname", { returns: returns<{ host: string }>() })
 *   .server("greet", { returns: returns<{ text: string }>() });
 *
 * // On the server:
 * const onServer = serverTasks(greeting, {
 *   greet: (input) => ({ text: `hello, ${input.hostname.host}` }),
 * });
 * // On the remote:
 * const onRemote = remoteTasks(greeting, { hostname: () => ({ host: "alice" }) });
 * ```
 *
 * @module
 */
export {
  type AnyWorkflow,
  defineWorkflow,
  type OutputsOf,
  type RetryPolicy,
  type Returns,
  returns,
  type Side,
  type TaskDeclaration,
  type TaskOptions,
  type TasksOf,
  type TaskTypes,
  Workflow,
  type WorkflowOptions,
} from "./workflow/definition.ts";
export {
  type LocalData,
  remoteTasks,
  serverTasks,
  type SideImplementations,
  type TaskContext,
  type TaskHooks,
  type TaskImplementation,
  TaskSet,
  type Validated,
} from "./workflow/task.ts";
export { ErrorCode, type ErrorContext, WorkflowError } from "./workflow/errors.ts";
export type { Value } from "./workflow/payload.ts";
export type {
  PermissionGrant,
  PermissionKind,
  Permissions,
  ResolvedGrant,
  ResolvedPermissions,
} from "./workflow/permissions.ts";
export type {
  ErrorRecord,
  RunRecord,
  RunStatus,
  RunSummary,
  TaskRecord,
  TaskStatus,
  WorkflowEvent,
} from "./workflow/state.ts";
export { serve, type ServeOptions, WorkflowServer } from "./server/serve.ts";
export { type ListOptions, MemoryStore, type RunStore } from "./server/store.ts";
export { SQLiteStore, type SQLiteStoreOptions } from "./server/sqlite_store.ts";
export {
  type Authenticator,
  bearerTokens,
  type CallInfo,
  type ClientCertificate,
  clientCertificates,
  type ClientCertificatesOptions,
  scopedKey,
} from "./server/auth.ts";
export type { ServerTlsOptions } from "./server/credentials.ts";
export { DEFAULT_LIMITS, type ServerLimits } from "./server/limits.ts";
export type { Pem } from "./workflow/tls.ts";
export type { ClientTlsOptions, TransportOptions } from "./client/credentials.ts";
export { connect, type ConnectOptions, type ReconnectOptions } from "./client/connect.ts";
export {
  formatReview,
  type Isolation,
  type ModuleGraph,
  type PermissionReview,
  type ReviewOptions,
  reviewPermissions,
  type SandboxOptions,
  type TaskReview,
} from "./client/review.ts";
export {
  type LocalStore,
  MemoryLocalStore,
  SQLiteLocalStore,
  type SQLiteLocalStoreOptions,
} from "./client/local_store.ts";
