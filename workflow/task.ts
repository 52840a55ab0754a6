/**
 * Task implementations, supplied separately by each side for the tasks it runs.
 *
 * @module
 */
import type {
  AnyWorkflow,
  MessagesOf,
  MessageTypes,
  Side,
  TasksOf,
  TaskTypes,
} from "./definition.ts";
import { ErrorCode, WorkflowError } from "./errors.ts";
import type { Value } from "./payload.ts";

/** Data private to one side of a run: never sent to the other side. */
export interface LocalData {
  /** The value stored under `name`, or `undefined`. */
  get<T extends Value = Value>(name: string): Promise<T | undefined>;
  /** Stores `value` under `name`; it is kept for the rest of the run. */
  set(name: string, value: Value): Promise<void>;
}

/** Topics of `M` that side `S` sends one-way. */
export type OneWayFrom<M, S extends Side> =
  & {
    [K in keyof M]: M[K] extends { from: S; reply: infer R } ? [R] extends [never] ? K : never
      : never;
  }[keyof M]
  & string;

/** Topics of `M` that side `S` sends as requests. */
export type RequestsFrom<M, S extends Side> =
  & {
    [K in keyof M]: M[K] extends { from: S; reply: infer R } ? [R] extends [never] ? never : K
      : never;
  }[keyof M]
  & string;

type Other<S extends Side> = S extends "server" ? "remote" : "server";

/** A message's value type. */
type ValueOf<M, K> = K extends keyof M ? M[K] extends MessageTypes ? M[K]["value"] : never
  : never;
/** A request's reply type. */
type ReplyOf<M, K> = K extends keyof M ? M[K] extends MessageTypes ? M[K]["reply"] : never
  : never;

/** Live messages, as a task on side `S` sees them (see {@linkcode Workflow.message}). */
export interface TaskMessages<M = Record<string, MessageTypes>, S extends Side = Side> {
  /**
   * Sends a one-way message to the other side. Delivered in order, at most once.
   *
   * @throws {WorkflowError} `Unavailable` when the other side is not connected (the message
   * is not queued).
   */
  send<K extends OneWayFrom<M, S>>(topic: K, value: ValueOf<M, K>): void;
  /**
   * Sends a request to the other side and resolves with its handler's answer.
   *
   * @throws {WorkflowError} `Unavailable` when the other side is not connected or leaves
   * before answering, `TaskTimeout` after `timeout` ms (default 30 s).
   */
  request<K extends RequestsFrom<M, S>>(
    topic: K,
    value: ValueOf<M, K>,
    options?: { timeout?: number },
  ): Promise<ReplyOf<M, K>>;
  /** Resolves with the next one-way message of `topic` from the other side. */
  receive<K extends OneWayFrom<M, Other<S>>>(topic: K): Promise<ValueOf<M, K>>;
}

/** What a task sees of its run while it runs. */
export interface TaskContext<M = Record<string, MessageTypes>, S extends Side = Side> {
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
  /**
   * Tells the server the task is alive. A remote task declared with `heartbeat: ms` must call
   * this (or {@linkcode TaskContext.progress}) at least every `ms` milliseconds, or its
   * attempt is failed and retried. On the server it does nothing.
   */
  heartbeat(): void;
  /** Live messages with the other side, as declared in the definition. */
  readonly messages: TaskMessages<M, S>;
}

/** What `validate` returns when the task's work is already done. */
export interface Validated<O> {
  /** The output the task would have returned. */
  output: O;
}

/** The three hooks of a task. Only `run` is required. */
export interface TaskHooks<I, O, C = TaskContext> {
  /** Does the work and returns the task's output. */
  run(input: I, context: C): O | Promise<O>;
  /**
   * Checks whether the work is already done (for example after a crash between doing it
   * and recording it). Returns the output when it is, so `run` is skipped; returns
   * `undefined` when it is not.
   */
  validate?(
    input: I,
    context: C,
  ): Validated<O> | undefined | Promise<Validated<O> | undefined>;
  /** Undoes what a failed `run` left behind. */
  rollback?(input: I, context: C, error: unknown): void | Promise<void>;
}

/** A task implementation: a `run` function, or an object with all three hooks. */
export type TaskImplementation<I, O, C = TaskContext> =
  | ((input: I, context: C) => O | Promise<O>)
  | TaskHooks<I, O, C>;

/** The implementations of every task that runs on `S`, by name. */
export type SideImplementations<W extends AnyWorkflow, S extends Side> = {
  [K in keyof TasksOf<W> as TasksOf<W>[K] extends { side: S } ? K : never]: TasksOf<W>[K] extends
    TaskTypes ? TaskImplementation<
      TasksOf<W>[K]["input"],
      TasksOf<W>[K]["output"],
      TaskContext<MessagesOf<W>, S>
    >
    : never;
};

/** Handlers of the messages that arrive at side `S`: requests get the handler's answer. */
export type MessageHandlers<W extends AnyWorkflow, S extends Side> = {
  [K in keyof MessagesOf<W> as MessagesOf<W>[K] extends { from: Other<S> } ? K : never]?:
    MessagesOf<W>[K] extends MessageTypes ? (
        value: MessagesOf<W>[K]["value"],
        info: { key: string; topic: string },
      ) => [MessagesOf<W>[K]["reply"]] extends [never] ? void | Promise<void>
        : MessagesOf<W>[K]["reply"] | Promise<MessagesOf<W>[K]["reply"]>
      : never;
};

/** Options of {@linkcode serverTasks} and {@linkcode remoteTasks}. */
export interface TaskSetOptions<W extends AnyWorkflow, S extends Side> {
  /** Handlers of the live messages that arrive at this side, by topic. */
  on?: MessageHandlers<W, S>;
  /**
   * Remote tasks: the URL of the module that exports this task set, almost always
   * `import.meta.url`. A client runs each task in an isolate that imports this module and
   * grants the task only the permissions it declares; without it, the tasks can run only
   * in the client's own process (`connect({ isolation: "none" })`).
   */
  module?: string | URL;
}

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
  /** Handlers of the live messages that arrive at this side, by topic. */
  readonly handlers: Readonly<
    Record<string, (value: Value, info: { key: string; topic: string }) => unknown>
  >;
  /** The URL of the module that exports this task set, when it was given. */
  readonly module?: string;

  /** Use {@linkcode serverTasks} or {@linkcode remoteTasks} instead. */
  constructor(
    workflow: W,
    side: S,
    implementations: Record<string, unknown>,
    options: { on?: Record<string, unknown>; module?: string | URL } = {},
  ) {
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
    const handlers: Record<
      string,
      (value: Value, info: { key: string; topic: string }) => unknown
    > = {};
    for (const [topic, handler] of Object.entries(options.on ?? {})) {
      const declaration = workflow.messages?.find((m: { name: string }) => m.name === topic);
      if (!declaration) problems.push(`handler "${topic}" is not a message of the definition`);
      else if (declaration.from === side) {
        problems.push(`handler "${topic}": that message is sent by the ${side}, not received`);
      } else if (typeof handler !== "function") {
        problems.push(`handler "${topic}" is not a function`);
      } else handlers[topic] = handler as (typeof handlers)[string];
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
    this.handlers = handlers;
    if (options.module !== undefined) this.module = checkModule(options.module, workflow.name);
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

function checkModule(module: string | URL, workflow: string): string {
  try {
    return new URL(module).href;
  } catch {
    throw new TypeError(
      `Cannot use module ${
        JSON.stringify(String(module))
      } for the tasks of workflow "${workflow}": expected an absolute URL such as import.meta.url`,
    );
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
 * @param options Handlers of the live messages the server receives.
 * @returns The implementations, checked against the definition.
 */
export function serverTasks<W extends AnyWorkflow>(
  workflow: W,
  implementations: SideImplementations<W, "server">,
  options: TaskSetOptions<W, "server"> = {},
): TaskSet<W, "server"> {
  return new TaskSet(
    workflow,
    "server",
    implementations as Record<string, unknown>,
    options as { on?: Record<string, unknown> },
  );
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
 * }, { module: import.meta.url }); // lets the client run each task in an isolate
 * ```
 *
 * @param workflow The definition.
 * @param implementations One implementation per remote task.
 * @param options Handlers of the live messages the remote receives, and the module URL.
 * @returns The implementations, checked against the definition.
 */
export function remoteTasks<W extends AnyWorkflow>(
  workflow: W,
  implementations: SideImplementations<W, "remote">,
  options: TaskSetOptions<W, "remote"> = {},
): TaskSet<W, "remote"> {
  return new TaskSet(
    workflow,
    "remote",
    implementations as Record<string, unknown>,
    options as { on?: Record<string, unknown>; module?: string | URL },
  );
}
