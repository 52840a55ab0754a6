/**
 * The typed workflow builder: an ordered list of tasks, each on the server or the remote.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Permissions } from "./permissions.ts";

/** Where a task runs. */
export type Side = "server" | "remote";

/** How often a failing task is tried again. */
export interface RetryPolicy {
  /** Attempts in all, the first included.
   *
   * @default {1} */
  maxAttempts?: number;
  /** Delay before the second attempt, in milliseconds; it doubles for each later attempt.
   *
   * @default {200} */
  initialDelay?: number;
  /** The longest delay between attempts, in milliseconds.
   *
   * @default {30000} */
  maxDelay?: number;
}

/**
 * The phantom type of a task's output, made by {@linkcode returns}. It carries no data at run
 * time: it only tells the compiler what the task produces.
 */
export interface Returns<T> {
  /** Never set: carries the output type for the compiler. */
  readonly __returns?: (value: T) => T;
}

/**
 * Declares the output type of a task.
 *
 * @example
 * ```ts
 * import { defineWorkflow, returns } from "@tradeline/workflow";
 *
 * const workflow = defineWorkflow("hello", { version: 1 })
 *   .remote("greet", { returns: returns<{ greeting: string }>() });
 * ```
 *
 * @returns A marker object with no content.
 */
export function returns<T>(): Returns<T> {
  return {};
}

/** Options of one task. */
export interface TaskOptions<O> {
  /** The task's output type, from {@linkcode returns}. Without it the task returns nothing. */
  returns?: Returns<O>;
  /** How long one attempt may run, in milliseconds; `0` means no limit.
   *
   * @default {0} */
  timeout?: number;
  /** What to do when an attempt fails. */
  retry?: RetryPolicy;
  /** Remote tasks only: the longest gap between heartbeats before the attempt is failed,
   * in milliseconds; `0` means heartbeats are not watched.
   *
   * @default {0} */
  heartbeat?: number;
  /** Remote tasks only: the Deno permissions the task runs with. None by default. */
  permissions?: Permissions;
  /** One line that says what the task does, shown in review tables. */
  description?: string;
}

/** A task as declared in a definition: plain data, no code. */
export interface TaskDeclaration {
  /** Unique name within the definition. */
  readonly name: string;
  /** Where the task runs. */
  readonly side: Side;
  /** Position in the definition, from 0. */
  readonly index: number;
  /** Attempt timeout in milliseconds; 0 means none. */
  readonly timeout: number;
  /** Heartbeat timeout in milliseconds; 0 means none. */
  readonly heartbeat: number;
  /** Retry policy with every field filled in. */
  readonly retry: Required<RetryPolicy>;
  /** Declared permissions (remote tasks). */
  readonly permissions?: Permissions;
  /** What the task does. */
  readonly description?: string;
}

/** A live message topic as declared in a definition. */
export interface MessageDeclaration {
  /** The topic, unique within the definition. */
  readonly name: string;
  /** The side that sends it. */
  readonly from: Side;
  /** Whether the receiver answers it (request/reply) or not (one-way). */
  readonly request: boolean;
}

/** The compile-time description of one message topic. */
export interface MessageTypes {
  /** The side that sends it. */
  from: Side;
  /** What it carries. */
  value: unknown;
  /** What the answer carries; `never` for a one-way message. */
  reply: unknown;
}

/** Options of {@linkcode Workflow.message}. */
export interface MessageOptions<S extends Side, V, R> {
  /** The side that sends the message. */
  from: S;
  /** What it carries, from {@linkcode returns}. */
  value?: Returns<V>;
  /** For a request: what the answer carries, from {@linkcode returns}. Without it the
   * message is one-way. */
  reply?: Returns<R>;
}

/** The compile-time description of one task: its side, its input and its output. */
export interface TaskTypes {
  /** Where the task runs. */
  side: Side;
  /** The outputs of every earlier task, keyed by task name. */
  input: unknown;
  /** What the task returns. */
  output: unknown;
}

// deno-lint-ignore ban-types
type Empty = {};

/** A workflow definition of any shape. */
// deno-lint-ignore no-explicit-any
export type AnyWorkflow = Workflow<any, any, any>;

/** The tasks of a workflow definition, by name. */
export type TasksOf<W extends AnyWorkflow> = W extends Workflow<infer _O, infer T, infer _M> ? T
  : never;

/** The outputs of every task of a workflow definition, by task name. */
export type OutputsOf<W extends AnyWorkflow> = W extends Workflow<infer O, infer _T, infer _M> ? O
  : never;

/** The message topics of a workflow definition, by name. */
export type MessagesOf<W extends AnyWorkflow> = W extends Workflow<infer _O, infer _T, infer M> ? M
  : never;

type FreshName<K extends string, Tasks> = K extends keyof Tasks ? never : K;

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const DEFAULT_RETRY: Required<RetryPolicy> = {
  maxAttempts: 1,
  initialDelay: 200,
  maxDelay: 30_000,
};

/** Options of {@linkcode defineWorkflow}. */
export interface WorkflowOptions {
  /** The definition's version: bump it when the task list or a task's meaning changes. */
  version: number;
}

/**
 * A workflow definition: a name, a version and an ordered list of tasks. Build one with
 * {@linkcode defineWorkflow}; both the server and the remote import the same definition.
 *
 * The type parameters track what each task may read: `Outputs` holds the output of every
 * task declared so far, keyed by task name.
 */
export class Workflow<
  Outputs extends object = Empty,
  Tasks extends object = Empty,
  Messages extends object = Empty,
> {
  /** The definition's name. */
  readonly name: string;
  /** The definition's version. */
  readonly version: number;
  /** The tasks, in order. */
  readonly tasks: readonly TaskDeclaration[];
  /** The live message topics. */
  readonly messages: readonly MessageDeclaration[];
  /** Carries the type parameters for the compiler; never set. */
  declare readonly types?: { outputs: Outputs; tasks: Tasks; messages: Messages };
  #fingerprint?: string;

  /** Use {@linkcode defineWorkflow} instead. */
  constructor(
    name: string,
    version: number,
    tasks: readonly TaskDeclaration[],
    messages: readonly MessageDeclaration[] = [],
  ) {
    this.name = name;
    this.version = version;
    this.tasks = tasks;
    this.messages = messages;
  }

  /**
   * Declares a live message topic: one side sends it during a task, the other receives it
   * (one-way) or answers it (request/reply, when `reply` is given). Both ends are
   * type-checked against this declaration.
   *
   * @example A configuration push and a question
   * ```ts
   * import { defineWorkflow, returns } from "@tradeline/workflow";
   *
   * const crawl = defineWorkflow("crawl", { version: 1 })
   *   .message("config", { from: "server", value: returns<{ rate: number }>() })
   *   .message("approve", {
   *     from: "remote",
   *     value: returns<{ url: string }>(),
   *     reply: returns<boolean>(),
   *   })
   *   .remote("fetch");
   * ```
   *
   * @param name The topic, unique within the definition.
   * @param options Who sends it, what it carries, and what its answer carries.
   * @returns A new definition with the topic declared.
   */
  message<const K extends string, const S extends Side, V = void, R = never>(
    name: FreshName<K, Messages>,
    options: MessageOptions<S, V, R>,
  ): Workflow<Outputs, Tasks, Messages & { [P in K]: { from: S; value: V; reply: R } }> {
    if (typeof name !== "string" || !NAME_PATTERN.test(name)) {
      throw new TypeError(
        `Cannot declare message ${
          JSON.stringify(name)
        } in workflow "${this.name}": a topic is 1 to 128 letters, digits, ".", "_", ":" or "-", starting with a letter or digit`,
      );
    }
    if (this.messages.some((m) => m.name === name)) {
      throw new TypeError(`Cannot declare message "${name}" twice in workflow "${this.name}"`);
    }
    if (options?.from !== "server" && options?.from !== "remote") {
      throw new TypeError(
        `Cannot declare message "${name}" in workflow "${this.name}": "from" must be "server" or "remote"`,
      );
    }
    const declaration = Object.freeze({ name, from: options.from, request: "reply" in options });
    return new Workflow(this.name, this.version, this.tasks, [...this.messages, declaration]);
  }

  /**
   * Appends a task that runs on the server.
   *
   * @param name The task's name, unique within the definition.
   * @param options The output type, timeout and retry policy.
   * @returns A new definition with the task appended.
   */
  server<const K extends string, O = void>(
    name: FreshName<K, Tasks>,
    options: TaskOptions<O> = {},
  ): Workflow<
    Outputs & { readonly [P in K]: O },
    Tasks & { [P in K]: { side: "server"; input: Readonly<Outputs>; output: O } },
    Messages
  > {
    return new Workflow(this.name, this.version, [
      ...this.tasks,
      this.#declare(name, "server", options),
    ], this.messages);
  }

  /**
   * Appends a task that runs on the remote.
   *
   * @param name The task's name, unique within the definition.
   * @param options The output type, timeout, retry policy, heartbeat and permissions.
   * @returns A new definition with the task appended.
   */
  remote<const K extends string, O = void>(
    name: FreshName<K, Tasks>,
    options: TaskOptions<O> = {},
  ): Workflow<
    Outputs & { readonly [P in K]: O },
    Tasks & { [P in K]: { side: "remote"; input: Readonly<Outputs>; output: O } },
    Messages
  > {
    return new Workflow(this.name, this.version, [
      ...this.tasks,
      this.#declare(name, "remote", options),
    ], this.messages);
  }

  /** The task of that name, or `undefined`. */
  task(name: string): TaskDeclaration | undefined {
    return this.tasks.find((task) => task.name === name);
  }

  /**
   * A SHA-256 over the name, version, ordered task names and sides, and message declarations:
   * two processes run a workflow together only when their fingerprints agree.
   */
  get fingerprint(): string {
    this.#fingerprint ??= createHash("sha256").update(JSON.stringify({
      name: this.name,
      version: this.version,
      tasks: this.tasks.map((task) => [task.name, task.side]),
      // Only when there are any, so that definitions without messages keep their fingerprint.
      ...(this.messages.length > 0
        ? { messages: this.messages.map((m) => [m.name, m.from, m.request]) }
        : {}),
    })).digest("hex");
    return this.#fingerprint;
  }

  #declare<O>(name: string, side: Side, options: TaskOptions<O>): TaskDeclaration {
    if (typeof name !== "string" || !NAME_PATTERN.test(name)) {
      throw new TypeError(
        `Cannot declare task ${
          JSON.stringify(name)
        } in workflow "${this.name}": a task name is 1 to 128 letters, digits, ".", "_", ":" or "-", starting with a letter or digit`,
      );
    }
    if (this.task(name)) {
      throw new TypeError(`Cannot declare task "${name}" twice in workflow "${this.name}"`);
    }
    const retry = { ...DEFAULT_RETRY, ...options.retry };
    checkCount(retry.maxAttempts, `retry.maxAttempts of task "${name}"`, 1);
    checkCount(retry.initialDelay, `retry.initialDelay of task "${name}"`, 0);
    checkCount(retry.maxDelay, `retry.maxDelay of task "${name}"`, 0);
    const timeout = options.timeout ?? 0;
    checkCount(timeout, `timeout of task "${name}"`, 0);
    const heartbeat = options.heartbeat ?? 0;
    checkCount(heartbeat, `heartbeat of task "${name}"`, 0);
    if (side === "server" && (options.heartbeat || options.permissions)) {
      throw new TypeError(
        `Cannot declare server task "${name}" with heartbeat or permissions: they apply to remote tasks only`,
      );
    }
    return Object.freeze({
      name,
      side,
      index: this.tasks.length,
      timeout,
      heartbeat,
      retry: Object.freeze(retry),
      ...(options.permissions ? { permissions: options.permissions } : {}),
      ...(options.description ? { description: options.description } : {}),
    });
  }
}

function checkCount(value: number, what: string, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`Cannot use ${what}: expected an integer >= ${min}, got ${value}`);
  }
}

/**
 * Starts a workflow definition. Chain `.server()` and `.remote()` to declare its tasks in
 * order; each task's input holds the outputs of the tasks before it, keyed by task name.
 *
 * @example A definition shared by the server and the remote
 * ```ts
 * import { defineWorkflow, returns } from "@tradeline/workflow";
 *
 * export const greeting = defineWorkflow("greeting", { version: 1 })
 *   .remote("hostname", { returns: returns<{ host: string }>() })
 *   .server("greet", { returns: returns<{ text: string }>() });
 * ```
 *
 * @param name The definition's name; the server looks definitions up by it.
 * @param options The version.
 * @returns An empty definition.
 */
export function defineWorkflow(name: string, options: WorkflowOptions): Workflow {
  if (typeof name !== "string" || !NAME_PATTERN.test(name)) {
    throw new TypeError(
      `Cannot define workflow ${
        JSON.stringify(name)
      }: a name is 1 to 128 letters, digits, ".", "_", ":" or "-", starting with a letter or digit`,
    );
  }
  checkCount(options?.version, `version of workflow "${name}"`, 1);
  if (options.version > 0xffff_ffff) {
    throw new RangeError(
      `Cannot use version ${options.version} of workflow "${name}": at most 2^32-1`,
    );
  }
  return new Workflow(name, options.version, []);
}

/**
 * Names the first difference between two definitions, or returns `undefined` when they
 * agree.
 */
export function firstDifference(
  ours: { name: string; version: number; tasks: readonly { name: string; side: Side }[] },
  theirs: { name: string; version: number; tasks: readonly { name: string; side: Side }[] },
): string | undefined {
  if (ours.name !== theirs.name) return `name "${theirs.name}" instead of "${ours.name}"`;
  if (ours.version !== theirs.version) {
    return `version ${theirs.version} instead of ${ours.version}`;
  }
  const length = Math.max(ours.tasks.length, theirs.tasks.length);
  for (let i = 0; i < length; i++) {
    const a = ours.tasks[i];
    const b = theirs.tasks[i];
    if (!a) return `task ${i + 1} "${b.name}" is not in the server's definition`;
    if (!b) return `task ${i + 1} "${a.name}" (${a.side}) is missing`;
    if (a.name !== b.name) return `task ${i + 1} is "${b.name}" instead of "${a.name}"`;
    if (a.side !== b.side) {
      return `task ${i + 1} "${a.name}" runs on the ${b.side} instead of the ${a.side}`;
    }
  }
  return undefined;
}
