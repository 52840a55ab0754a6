/**
 * Task implementations, supplied separately by each side for the tasks it runs.
 *
 * @module
 */
import type { AnyWorkflow, Side, TasksOf, TaskTypes } from "./definition.ts";
import { ErrorCode, WorkflowError } from "./errors.ts";
import type { Value } from "./payload.ts";

/** Data private to one side of a run: never sent to the other side. */
export interface LocalData {
  /** The value stored under `name`, or `undefined`. */
  get<T extends Value = Value>(name: string): Promise<T | undefined>;
  /** Stores `value` under `name`; it is kept for the rest of the run. */
  set(name: string, value: Value): Promise<void>;
}

/** What a task sees of its run while it runs. */
export interface TaskContext {
  /** The run's workflow key. */
  readonly key: string;
  /** The task's name. */
  readonly task: string;
  /** The attempt number, from 1. */
  readonly attempt: number;
  /** Where the task runs. */
  readonly side: Side;
  /** Aborted when the attempt is cancelled, times out, or its side shuts down. */
  readonly signal: AbortSignal;
  /** Data private to this side of the run (for example a secret exponent). */
  readonly local: LocalData;
  /**
   * Reports progress: `fraction` from 0 to 1 and an optional note. Both sides show it.
   */
  progress(fraction: number, note?: string): void;
}

/** What `validate` returns when the task's work is already done. */
export interface Validated<O> {
  /** The output the task would have returned. */
  output: O;
}

/** The three hooks of a task. Only `run` is required. */
export interface TaskHooks<I, O> {
  /** Does the work and returns the task's output. */
  run(input: I, context: TaskContext): O | Promise<O>;
  /**
   * Checks whether the work is already done (for example after a crash between doing it
   * and recording it). Returns the output when it is, so `run` is skipped; returns
   * `undefined` when it is not.
   */
  validate?(
    input: I,
    context: TaskContext,
  ): Validated<O> | undefined | Promise<Validated<O> | undefined>;
  /** Undoes what a failed `run` left behind. */
  rollback?(input: I, context: TaskContext, error: unknown): void | Promise<void>;
}

/** A task implementation: a `run` function, or an object with all three hooks. */
export type TaskImplementation<I, O> =
  | ((input: I, context: TaskContext) => O | Promise<O>)
  | TaskHooks<I, O>;

/** The implementations of every task that runs on `S`, by name. */
export type SideImplementations<W extends AnyWorkflow, S extends Side> = {
  [K in keyof TasksOf<W> as TasksOf<W>[K] extends { side: S } ? K : never]: TasksOf<W>[K] extends
    TaskTypes ? TaskImplementation<TasksOf<W>[K]["input"], TasksOf<W>[K]["output"]>
    : never;
};

/** The hooks of one task, untyped, as the engine calls them. */
export interface AnyTaskHooks {
  run(input: Record<string, Value>, context: TaskContext): unknown;
  validate?(
    input: Record<string, Value>,
    context: TaskContext,
  ): Validated<unknown> | undefined | Promise<Validated<unknown> | undefined>;
  rollback?(input: Record<string, Value>, context: TaskContext, error: unknown): unknown;
}

/**
 * The implementations of one side's tasks of a definition. Made by
 * {@linkcode serverTasks} or {@linkcode remoteTasks}.
 */
export class TaskSet<W extends AnyWorkflow = AnyWorkflow, S extends Side = Side> {
  /** The definition. */
  readonly workflow: W;
  /** The side these implementations run on. */
  readonly side: S;
  readonly #hooks: ReadonlyMap<string, AnyTaskHooks>;

  /** Use {@linkcode serverTasks} or {@linkcode remoteTasks} instead. */
  constructor(workflow: W, side: S, implementations: Record<string, unknown>) {
    if (!(workflow instanceof Object) || !Array.isArray(workflow.tasks)) {
      throw new TypeError(
        "Cannot implement tasks: the first argument is not a workflow definition",
      );
    }
    const hooks = new Map<string, AnyTaskHooks>();
    const problems: string[] = [];
    for (const task of workflow.tasks) {
      if (task.side !== side) continue;
      const implementation = implementations?.[task.name];
      if (typeof implementation === "function") {
        hooks.set(task.name, { run: implementation as AnyTaskHooks["run"] });
      } else if (
        implementation && typeof implementation === "object" &&
        typeof (implementation as AnyTaskHooks).run === "function"
      ) {
        hooks.set(task.name, implementation as AnyTaskHooks);
      } else {
        problems.push(`"${task.name}" has no implementation (a function, or { run })`);
      }
    }
    for (const name of Object.keys(implementations ?? {})) {
      const task = workflow.task(name);
      if (!task) problems.push(`"${name}" is not a task of the definition`);
      else if (task.side !== side) {
        problems.push(`"${name}" runs on the ${task.side}, not the ${side}`);
      }
    }
    if (problems.length > 0) {
      throw new WorkflowError(
        ErrorCode.InvalidImplementation,
        `Cannot use the ${side} tasks of workflow "${workflow.name}": ${problems.join("; ")}`,
      );
    }
    this.workflow = workflow;
    this.side = side;
    this.#hooks = hooks;
  }

  /** The hooks of the task of that name. */
  hooks(name: string): AnyTaskHooks {
    const hooks = this.#hooks.get(name);
    if (!hooks) {
      throw new WorkflowError(
        ErrorCode.InvalidImplementation,
        `Task "${name}" of workflow "${this.workflow.name}" has no ${this.side} implementation`,
        { task: name },
      );
    }
    return hooks;
  }
}

/**
 * Supplies the implementations of a definition's server tasks. Leaving one out, or adding a
 * remote task, is a type error (and an error at start-up).
 *
 * @example
 * ```ts
 * import { defineWorkflow, returns, serverTasks } from "@tradeline/workflow";
 *
 * const greeting = defineWorkflow("greeting", { version: 1 })
 *   .remote("hostname", { returns: returns<{ host: string }>() })
 *   .server("greet", { returns: returns<{ text: string }>() });
 *
 * export const tasks = serverTasks(greeting, {
 *   greet: (input) => ({ text: `hello, ${input.hostname.host}` }),
 * });
 * ```
 *
 * @param workflow The definition.
 * @param implementations One implementation per server task.
 * @returns The implementations, checked against the definition.
 */
export function serverTasks<W extends AnyWorkflow>(
  workflow: W,
  implementations: SideImplementations<W, "server">,
): TaskSet<W, "server"> {
  return new TaskSet(workflow, "server", implementations as Record<string, unknown>);
}

/**
 * Supplies the implementations of a definition's remote tasks. Leaving one out, or adding a
 * server task, is a type error (and an error at start-up).
 *
 * @example
 * ```ts
 * import { defineWorkflow, remoteTasks, returns } from "@tradeline/workflow";
 *
 * const greeting = defineWorkflow("greeting", { version: 1 })
 *   .remote("hostname", { returns: returns<{ host: string }>() })
 *   .server("greet", { returns: returns<{ text: string }>() });
 *
 * export const tasks = remoteTasks(greeting, {
 *   hostname: () => ({ host: "alice" }),
 * });
 * ```
 *
 * @param workflow The definition.
 * @param implementations One implementation per remote task.
 * @returns The implementations, checked against the definition.
 */
export function remoteTasks<W extends AnyWorkflow>(
  workflow: W,
  implementations: SideImplementations<W, "remote">,
): TaskSet<W, "remote"> {
  return new TaskSet(workflow, "remote", implementations as Record<string, unknown>);
}
