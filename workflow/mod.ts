/**
 * The side-neutral part of `@tradeline/workflow`: the definition builder, task
 * implementations, errors and value types, with no gRPC, no server and no client.
 *
 * Import workflow definitions and remote task modules from here rather than from the package
 * root: a client runs each remote task in an isolate that loads the task's module with only
 * the task's permissions, and the package root loads gRPC, which reads environment
 * variables as it loads (an isolate without `env` permission refuses that).
 *
 * @example A remote task module that a client can isolate
 * ```ts
 * import { defineWorkflow, remoteTasks, returns } from "@tradeline/workflow/define";
 *
 * export const logs = defineWorkflow("logs", { version: 1 })
 *   .remote("count", { returns: returns<{ files: number }>(), permissions: { read: ["./logs"] } });
 *
 * export const tasks = remoteTasks(logs, {
 *   count: async () => {
 *     let files = 0;
 *     for await (const _ of Deno.readDir("./logs")) files++;
 *     return { files };
 *   },
 * }, { module: import.meta.url });
 * ```
 *
 * @module
 */
export {
  type AnyWorkflow,
  defineWorkflow,
  type MessageDeclaration,
  type MessageOptions,
  type MessagesOf,
  type MessageTypes,
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
} from "./definition.ts";
export {
  type LocalData,
  type MessageHandlers,
  remoteTasks,
  serverTasks,
  type SideImplementations,
  type TaskContext,
  type TaskHooks,
  type TaskImplementation,
  type TaskMessages,
  TaskSet,
  type TaskSetOptions,
  type Validated,
} from "./task.ts";
export { ErrorCode, type ErrorContext, WorkflowError } from "./errors.ts";
export type { Value } from "./payload.ts";
export type {
  PermissionGrant,
  PermissionKind,
  Permissions,
  ResolvedGrant,
  ResolvedPermissions,
} from "./permissions.ts";
export type {
  ErrorRecord,
  RunRecord,
  RunStatus,
  RunSummary,
  TaskRecord,
  TaskStatus,
  WorkflowEvent,
} from "./state.ts";
