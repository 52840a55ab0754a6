/**
 * The workflow of the sandbox section: no-op remote tasks that declare no permissions, in a
 * module of their own so that a task isolate can import it (it exports exactly one remote
 * task set, made with `module: import.meta.url`), and imports only the side-neutral part of
 * the package (the root loads gRPC, which an isolate without `env` permission refuses).
 *
 * @module
 */
import { defineWorkflow, remoteTasks, serverTasks } from "../workflow/mod.ts";

/** Ten no-op remote tasks. */
export const sandboxWorkflow = defineWorkflow("bench-sandbox", { version: 1 })
  .remote("s0")
  .remote("s1")
  .remote("s2")
  .remote("s3")
  .remote("s4")
  .remote("s5")
  .remote("s6")
  .remote("s7")
  .remote("s8")
  .remote("s9");

const noop = () => {};

/** The remote half: each task returns nothing. */
export const sandboxRemote = remoteTasks(sandboxWorkflow, {
  s0: noop,
  s1: noop,
  s2: noop,
  s3: noop,
  s4: noop,
  s5: noop,
  s6: noop,
  s7: noop,
  s8: noop,
  s9: noop,
}, { module: import.meta.url });

/** The server half: empty. */
export const sandboxServer = serverTasks(sandboxWorkflow, {});
