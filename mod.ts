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
// The side-neutral builder, the server half and the client half, as their subpaths export them.
export * from "./workflow/mod.ts";
export * from "./server/mod.ts";
export * from "./client/mod.ts";
