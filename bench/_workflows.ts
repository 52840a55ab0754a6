/**
 * The no-op workflows the benchmark runs.
 *
 * @module
 */
import {
  type AnyWorkflow,
  defineWorkflow,
  remoteTasks,
  serverTasks,
  type TaskSet,
} from "../mod.ts";

type Builder = { remote(name: string): Builder; server(name: string): Builder };

/**
 * A workflow of `count` no-op tasks; `sides` picks each task's side from its index.
 */
function build(name: string, count: number, side: (i: number) => "remote" | "server") {
  let builder = defineWorkflow(name, { version: 1 }) as unknown as Builder;
  for (let i = 0; i < count; i++) {
    builder = side(i) === "remote" ? builder.remote(`t${i}`) : builder.server(`t${i}`);
  }
  return builder as unknown as AnyWorkflow;
}

function implement(workflow: AnyWorkflow, side: "remote" | "server", run: () => unknown) {
  const impl: Record<string, () => unknown> = {};
  for (const task of workflow.tasks) if (task.side === side) impl[task.name] = run;
  return impl;
}

/** Both halves of a bench workflow. */
export interface BenchWorkflow {
  workflow: AnyWorkflow;
  server: TaskSet<AnyWorkflow, "server">;
  remote: TaskSet<AnyWorkflow, "remote">;
}

/**
 * `count` consecutive no-op remote tasks (the server's implementation set is empty).
 * `onTask` runs at the start of each remote task, for timing.
 */
export function chain(count: number, onTask: () => void = () => {}): BenchWorkflow {
  const workflow = build(`bench-chain-${count}`, count, () => "remote");
  return {
    workflow,
    // deno-lint-ignore no-explicit-any
    server: serverTasks(workflow, {} as any),
    // deno-lint-ignore no-explicit-any
    remote: remoteTasks(workflow, implement(workflow, "remote", onTask) as any),
  };
}

/** `count` no-op tasks alternating sides, starting on the remote. */
export function alternating(count: number): BenchWorkflow {
  const workflow = build(`bench-alt-${count}`, count, (i) => (i % 2 === 0 ? "remote" : "server"));
  const noop = () => {};
  return {
    workflow,
    // deno-lint-ignore no-explicit-any
    server: serverTasks(workflow, implement(workflow, "server", noop) as any),
    // deno-lint-ignore no-explicit-any
    remote: remoteTasks(workflow, implement(workflow, "remote", noop) as any),
  };
}

/**
 * One remote task that holds until its attempt is aborted: the remote stays attached and
 * idle, and the server holds its call and run.
 */
export function hold(): BenchWorkflow {
  const workflow = defineWorkflow("bench-hold", { version: 1 }).remote("hold");
  return {
    workflow,
    // deno-lint-ignore no-explicit-any
    server: serverTasks(workflow, {} as any),
    remote: remoteTasks(workflow, {
      hold: (_input, ctx) =>
        new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve())),
    }),
  };
}

/**
 * The server limits the benchmark raises (see `ServerLimits`): the defaults cap open calls at
 * 1,000, calls per connection at 100 and unfinished runs at 1,000, below what the throughput
 * and idle-remote sections hold.
 */
export const BENCH_LIMITS = {
  maxStreams: 100_000,
  maxStreamsPerConnection: 10_000,
  maxRunsPerPrincipal: 100_000,
} as const;
