/**
 * One run on the server: its record, its attached remote, and the logic that decides what
 * runs next. Pure: no gRPC here; a remote is anything that implements {@linkcode Connection}.
 *
 * Every change to a run goes through one queue, so events for a run are handled one at a
 * time, in order, and the record is persisted before any frame that depends on it is sent.
 *
 * @module
 */
import type { TaskDeclaration } from "../workflow/definition.ts";
import { describeError, ErrorCode, WorkflowError } from "../workflow/errors.ts";
import type { Value } from "../workflow/payload.ts";
import {
  markCancelled,
  type RunRecord,
  type TaskRecord,
  type WorkflowEvent,
} from "../workflow/state.ts";
import type { LocalData, TaskContext, TaskSet } from "../workflow/task.ts";
import { retryDelay, runAttempt } from "../workflow/attempt.ts";
import { MessageHub } from "../workflow/messages.ts";
import { decodePayload, encodePayload } from "../proto/payload.ts";
import type { Output, RemoteFrame, ServerFrame, TaskEvent } from "../proto/wire.ts";
import type { RunStore } from "./store.ts";

/** An attached remote, as the engine sees it. */
export interface Connection {
  /** Who is at the other end, for logs. */
  readonly peer: string;
  /** Queues a frame for the remote. Never throws; frames to a closed connection are dropped. */
  send(frame: ServerFrame): void;
  /** Ends the call: with an OK status, or with the status of `error`. */
  end(error?: WorkflowError): void;
}

/** What a run needs from the engine that owns it. */
export interface RunEnvironment {
  readonly store: RunStore;
  readonly tasks: TaskSet;
  publish(event: WorkflowEvent): void;
  /** Called once when the run reaches a final status. */
  finished(run: Run): void;
  /** Called when the run's state can no longer be trusted (a store write failed). */
  broken(run: Run, error: unknown): void;
  readonly now: () => number;
  /** This server, as run leases name it. */
  readonly holder: string;
  /** How long a lease lasts after a write, in ms. */
  readonly leaseTime: number;
}

interface RemoteAttempt {
  task: TaskDeclaration;
  attempt: number;
  connection: Connection;
  timeout?: Timer;
  heartbeat?: Timer;
}

interface ServerAttempt {
  task: TaskDeclaration;
  attempt: number;
  abort: AbortController;
  done: Promise<void>;
}

type Effect = () => void;
type Timer = ReturnType<typeof setTimeout>;

/** The server side of one run. */
export class Run {
  record: RunRecord;
  readonly #env: RunEnvironment;
  #connection?: Connection;
  /** Outputs the attached remote already holds. */
  #sent = new Set<string>();
  /** Decoded outputs, so server tasks do not decode the same bytes twice. */
  readonly #values = new Map<string, Value>();
  #remote?: RemoteAttempt;
  #server?: ServerAttempt;
  #retryTimer?: Timer;
  #draining = false;
  /** The lease was given up: this server writes no more. */
  #closed = false;
  #tail: Promise<void> = Promise.resolve();
  readonly #hub: MessageHub;

  constructor(record: RunRecord, env: RunEnvironment) {
    this.record = record;
    this.#env = env;
    this.#hub = new MessageHub({
      side: "server",
      workflow: env.tasks.workflow,
      key: record.key,
      handlers: env.tasks.handlers,
      transmit: (message) => {
        const connection = this.#connection;
        if (!connection) return false;
        connection.send({ kind: "message", message });
        return true;
      },
      observe: (message) =>
        this.#publish({
          type: "message",
          topic: message.topic,
          from: "remote",
          task: message.task,
          attempt: message.attempt,
        }),
    });
  }

  /**
   * Sends a one-way message of a topic the server sends to the attached remote: its running
   * task receives it with `ctx.messages.receive(topic)`.
   *
   * @throws {WorkflowError} `Unavailable` when no remote is attached.
   */
  send(topic: string, value: unknown): void {
    this.#hub.send(topic, value, { task: "", attempt: 0 });
    this.#publish({ type: "message", topic, from: "server", task: "", attempt: 0 });
  }

  /** The run's workflow key. */
  get key(): string {
    return this.record.key;
  }

  /** Whether a remote is attached. */
  get attached(): boolean {
    return this.#connection !== undefined;
  }

  /** Whether a task attempt is in flight. */
  get busy(): boolean {
    return this.#remote !== undefined || this.#server !== undefined;
  }

  /** Resolves once every queued change has been handled. */
  settled(): Promise<void> {
    return this.#tail;
  }

  #enqueue(work: () => void | Promise<void>): Promise<void> {
    this.#tail = this.#tail.then(work).catch((error) => this.#env.broken(this, error));
    return this.#tail;
  }

  /**
   * Attaches a remote. Throws `RunBusy` at once when another remote is attached.
   */
  attach(connection: Connection): Promise<void> {
    if (this.#connection) {
      throw new WorkflowError(
        ErrorCode.RunBusy,
        `Run "${this.key}" already has a remote attached (${this.#connection.peer}); stop that remote first, or use another workflow key`,
        { key: this.key },
      );
    }
    this.#connection = connection;
    return this.#enqueue(async () => {
      if (this.#connection !== connection) return;
      const { record } = this;
      this.#sent = new Set();
      connection.send({
        kind: "welcome",
        welcome: {
          nextTask: this.#nextTask()?.index ?? record.tasks.length,
          outputs: this.#unsentOutputs(),
          tasks: record.tasks.map((task) => taskEvent(task)),
        },
      });
      this.#publish({ type: "remote.attached", peer: connection.peer });
      if (record.status !== "running") {
        this.#sendEnd(connection);
        return;
      }
      await this.#advance([]);
    });
  }

  /** Continues a run loaded from the store: runs its next server task, if that is next. */
  resume(): Promise<void> {
    return this.#enqueue(() => this.#advance([]));
  }

  /** Detaches a remote whose call ended; an attempt it was running is abandoned. */
  detach(connection: Connection, reason: string): Promise<void> {
    return this.#enqueue(async () => {
      if (this.#connection !== connection) return;
      this.#connection = undefined;
      this.#sent.clear();
      this.#hub.disconnected(reason);
      this.#publish({ type: "remote.detached", peer: connection.peer, reason });
      const remote = this.#remote;
      if (remote?.connection === connection) {
        this.#clearRemote();
        const task = this.#taskRecord(remote.task.name);
        if (task.status === "running") {
          task.status = "pending";
          task.error = {
            code: ErrorCode.Unavailable,
            message: `The remote went away during attempt ${remote.attempt}: ${reason}`,
          };
          await this.#commit();
        }
      }
    });
  }

  /** Handles a frame from the attached remote (anything but hello). */
  receive(connection: Connection, frame: RemoteFrame): Promise<void> {
    return this.#enqueue(() => {
      if (this.#connection !== connection) return;
      switch (frame.kind) {
        case "result":
          return this.#onResult(connection, frame.result.task, frame.result.attempt, {
            output: frame.result.output,
          });
        case "failure":
          return this.#onResult(connection, frame.failure.task, frame.failure.attempt, {
            error: frame.failure.error,
          });
        case "progress": {
          const { task, attempt, fraction, note } = frame.progress;
          if (!this.#isCurrent(connection, task, attempt)) return;
          this.#taskRecord(task).progress = { fraction, note };
          this.#armHeartbeat();
          this.#publish({ type: "task.progress", task, attempt, fraction, note });
          return;
        }
        case "heartbeat":
          if (this.#isCurrent(connection, frame.heartbeat.task, frame.heartbeat.attempt)) {
            this.#armHeartbeat();
          }
          return;
        case "refusal":
          return this.#fail(undefined, {
            code: frame.refusal.error.code || ErrorCode.PermissionDenied,
            message: `The remote refused to run: ${frame.refusal.error.message}`,
          });
        case "hello":
          this.#violation(connection, "hello: sent twice on one call");
          return;
        case "message": {
          const { task, attempt } = frame.message;
          // A message from an attempt that is no longer current is dropped.
          if (task && !this.#isCurrent(connection, task, attempt)) return;
          try {
            this.#hub.deliver(frame.message);
          } catch (error) {
            this.#violation(connection, (error as Error).message);
          }
          return;
        }
      }
    });
  }

  /**
   * Cancels the run: the attempt in flight is aborted (its `ctx.signal` fires and its
   * rollback hook runs), the remote is told, and the run is recorded as cancelled.
   *
   * @returns `false` when the run had already ended.
   */
  cancel(reason: string): Promise<boolean> {
    let cancelled = false;
    return this.#enqueue(async () => {
      if (this.record.status !== "running") return;
      cancelled = true;
      const error = new WorkflowError(
        ErrorCode.Cancelled,
        `Run "${this.key}" was cancelled: ${reason}`,
        {
          key: this.key,
        },
      );
      const { remote, server } = this.#stopAttempts();
      markCancelled(this.record, error.message, this.#env.now());
      await this.#commit();
      server?.abort.abort(error);
      if (remote) {
        remote.connection.send({
          kind: "cancel",
          cancel: { task: remote.task.name, attempt: remote.attempt, reason },
        });
      }
      this.#publish({ type: "run.cancelled", reason });
      if (this.#connection) this.#sendEnd(this.#connection);
      this.#env.finished(this);
    }).then(() => cancelled);
  }

  /** Stops starting new attempts; resolves when in-flight attempts have ended. */
  async drain(): Promise<void> {
    this.#draining = true;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    await this.#tail;
    while (this.#server || this.#remote) {
      // Not `race([this.#server?.done, ...])`: with no server attempt that races `undefined`,
      // which resolves at once, and the loop spins without yielding to the event loop.
      const poll = new Promise((resolve) => setTimeout(resolve, 10));
      await Promise.race(this.#server ? [this.#server.done, poll] : [poll]);
      await this.#tail;
    }
  }

  /** Ends the attached remote's call with `error`, and aborts a server task in flight. */
  close(error: WorkflowError): void {
    this.#draining = true;
    this.#server?.abort.abort(error);
    clearTimeout(this.#retryTimer);
    this.#clearRemote();
    this.#connection?.end(error);
    this.#connection = undefined;
  }

  // --- deciding what runs next -------------------------------------------------------

  #nextTask(): TaskDeclaration | undefined {
    const { tasks } = this.#env.tasks.workflow;
    return tasks.find((task) => {
      const status = this.record.tasks[task.index].status;
      return status !== "completed" && status !== "skipped";
    });
  }

  /** Decides what runs next, persists, then performs the effects. */
  async #advance(effects: Effect[]): Promise<void> {
    const changed = this.record.status === "running" && !this.#draining
      ? this.#plan(effects)
      : false;
    if (changed || effects.length > 0) await this.#commit();
    for (const effect of effects) effect();
  }

  #plan(effects: Effect[]): boolean {
    if (this.#server || this.#remote || this.#retryTimer !== undefined) return false;
    const next = this.#nextTask();
    const now = this.#env.now();
    const waiting = next && this.record.tasks[next.index];
    if (waiting?.status === "retrying" && (waiting.retryAt ?? 0) > now) {
      this.#armRetry(waiting.retryAt!); // a retry owed by a server that stopped during its backoff
      return false;
    }
    if (!next) {
      this.record.status = "completed";
      effects.push(() => {
        this.#publish({ type: "run.completed" });
        if (this.#connection) this.#sendEnd(this.#connection);
        this.#env.finished(this);
      });
      return true;
    }
    const task = this.record.tasks[next.index];
    if (next.side === "remote") {
      const connection = this.#connection;
      if (!connection) return false;
      const attempt = ++task.attempts;
      Object.assign(task, {
        status: "running",
        startedAt: now,
        progress: undefined,
        retryAt: undefined,
      });
      this.#remote = { task: next, attempt, connection };
      effects.push(() => {
        this.#publish({ type: "task.started", task: next.name, side: "remote", attempt });
        if (this.#remote?.attempt !== attempt || this.#connection !== connection) return;
        connection.send({
          kind: "dispatch",
          dispatch: {
            task: next.name,
            attempt,
            outputs: this.#unsentOutputs(),
            timeoutMs: next.timeout,
            heartbeatMs: next.heartbeat,
          },
        });
        if (next.timeout > 0) {
          this.#remote.timeout = setTimeout(
            () =>
              this.#enqueue(() => this.#remoteTimedOut(next, attempt, "timed out", next.timeout)),
            next.timeout,
          );
        }
        this.#armHeartbeat();
      });
      return true;
    }
    const attempt = ++task.attempts;
    Object.assign(task, {
      status: "running",
      startedAt: now,
      progress: undefined,
      retryAt: undefined,
    });
    const abort = new AbortController();
    const server: ServerAttempt = { task: next, attempt, abort, done: Promise.resolve() };
    this.#server = server;
    effects.push(() => {
      this.#publish({ type: "task.started", task: next.name, side: "server", attempt });
      this.#sendTaskEvent(task);
      server.done = this.#runServerTask(next, attempt, abort);
    });
    return true;
  }

  async #runServerTask(
    task: TaskDeclaration,
    attempt: number,
    abort: AbortController,
  ): Promise<void> {
    const context = this.#context(task, attempt, abort.signal);
    let input: Record<string, Value>;
    try {
      input = this.#input();
    } catch (error) {
      await this.#enqueue(() => this.#serverTaskDone(task, attempt, { ok: false, error }));
      return;
    }
    const outcome = await runAttempt(this.#env.tasks.hooks(task.name), task, input, context, abort);
    let encoded: { ok: true; output: Uint8Array; skipped: boolean } | { ok: false; error: unknown };
    if (outcome.ok) {
      try {
        encoded = {
          ok: true,
          output: encodePayload(outcome.output, "output"),
          skipped: outcome.skipped,
        };
        this.#values.set(task.name, outcome.output as Value);
      } catch (error) {
        encoded = {
          ok: false,
          error: new WorkflowError(
            ErrorCode.InvalidPayload,
            `Task "${task.name}" of run "${this.key}" returned an output that cannot be sent: ${
              (error as Error).message
            }`,
            { key: this.key, task: task.name, attempt, cause: error },
          ),
        };
      }
    } else {
      encoded = outcome;
    }
    await this.#enqueue(() => this.#serverTaskDone(task, attempt, encoded));
  }

  async #serverTaskDone(
    task: TaskDeclaration,
    attempt: number,
    outcome: { ok: true; output: Uint8Array; skipped: boolean } | { ok: false; error: unknown },
  ): Promise<void> {
    if (this.#server?.task !== task || this.#server.attempt !== attempt) return;
    this.#server = undefined;
    if (!outcome.ok) return this.#taskFailed(task, attempt, describeError(outcome.error));
    await this.#completed(task, attempt, outcome.output, outcome.skipped);
  }

  async #completed(task: TaskDeclaration, attempt: number, output: Uint8Array, skipped: boolean) {
    const record = this.#taskRecord(task.name);
    const now = this.#env.now();
    Object.assign(record, {
      status: skipped ? "skipped" : "completed",
      finishedAt: now,
      error: undefined,
    });
    this.record.outputs[task.name] = output;
    const effects: Effect[] = [() => {
      const durationMs = now - (record.startedAt ?? now);
      if (skipped) {
        this.#publish({ type: "task.skipped", task: task.name, side: task.side, attempt });
      } else {this.#publish({
          type: "task.completed",
          task: task.name,
          side: task.side,
          attempt,
          durationMs,
        });}
      if (task.side === "server") this.#sendTaskEvent(record);
    }];
    await this.#advance(effects);
  }

  async #taskFailed(
    task: TaskDeclaration,
    attempt: number,
    error: { code: string; message: string },
  ) {
    const record = this.#taskRecord(task.name);
    record.error = error;
    if (this.#draining && error.code === ErrorCode.ShuttingDown) {
      // Interrupted by this server's shutdown, not failed: it runs again after a restart.
      record.status = "pending";
      await this.#commit();
      return;
    }
    const retryable = error.code !== ErrorCode.Cancelled &&
      error.code !== ErrorCode.PermissionDenied;
    if (retryable && attempt < task.retry.maxAttempts) {
      // The time of the retry is recorded, so that a server that restarts keeps the backoff.
      record.status = "retrying";
      record.retryAt = this.#env.now() + retryDelay(task, attempt + 1);
      if (!this.#draining) this.#armRetry(record.retryAt);
      await this.#commit();
      this.#publish({ type: "task.retrying", task: task.name, side: task.side, attempt, error });
      if (task.side === "server") this.#sendTaskEvent(record);
      return;
    }
    record.status = "failed";
    record.finishedAt = this.#env.now();
    this.#publish({ type: "task.failed", task: task.name, side: task.side, attempt, error });
    if (task.side === "server") this.#sendTaskEvent(record);
    await this.#fail(task.name, error);
  }

  async #fail(task: string | undefined, error: { code: string; message: string }): Promise<void> {
    const { remote, server } = this.#stopAttempts();
    for (const attempt of [remote, server]) {
      if (!attempt) continue;
      // The attempt in flight will never be recorded: it ends with the run.
      const record = this.#taskRecord(attempt.task.name);
      if (record.status === "running") {
        Object.assign(record, { status: "failed", finishedAt: this.#env.now(), error });
      }
    }
    server?.abort.abort(
      new WorkflowError(ErrorCode.RunFailed, `Run "${this.key}" failed: ${error.message}`, {
        key: this.key,
      }),
    );
    this.record.status = "failed";
    this.record.error = { ...error, ...(task ? { task } : {}) };
    await this.#advance([() => {
      this.#publish({ type: "run.failed", error: this.record.error! });
      if (this.#connection) this.#sendEnd(this.#connection);
      this.#env.finished(this);
    }]);
  }

  // --- remote frames ----------------------------------------------------------------

  #isCurrent(connection: Connection, task: string, attempt: number): boolean {
    const remote = this.#remote;
    return remote !== undefined && remote.connection === connection && remote.task.name === task &&
      remote.attempt === attempt;
  }

  async #onResult(
    connection: Connection,
    name: string,
    attempt: number,
    result: { output: Uint8Array } | { error: { code: string; message: string } },
  ): Promise<void> {
    if (!this.#isCurrent(connection, name, attempt)) {
      const task = this.record.tasks.find((t) => t.name === name);
      // A late answer for an attempt that was started and then given up on is ignored.
      if (task?.side === "remote" && attempt <= task.attempts) return;
      const current = this.#remote
        ? `"${this.#remote.task.name}" attempt ${this.#remote.attempt} is in flight`
        : "no remote task is in flight";
      this.#violation(
        connection,
        `${
          "output" in result ? "result" : "failure"
        } for task "${name}" attempt ${attempt} of run "${this.key}" rejected: ${current}`,
      );
      return;
    }
    const remote = this.#remote!;
    this.#clearRemote();
    if ("error" in result) return this.#taskFailed(remote.task, attempt, result.error);
    let value: Value;
    try {
      value = decodePayload(result.output, `output of task "${name}"`);
    } catch (error) {
      this.#violation(connection, (error as Error).message);
      const task = this.#taskRecord(name);
      task.status = "pending";
      await this.#commit();
      return;
    }
    this.#values.set(name, value);
    this.#sent.add(name); // the remote made it: it never needs it back
    await this.#completed(remote.task, attempt, result.output, false);
  }

  #remoteTimedOut(
    task: TaskDeclaration,
    attempt: number,
    what: string,
    ms: number,
  ): Promise<void> | void {
    const remote = this.#remote;
    if (!remote || remote.task !== task || remote.attempt !== attempt) return;
    this.#clearRemote();
    remote.connection.send({
      kind: "cancel",
      cancel: { task: task.name, attempt, reason: `${what} after ${ms} ms` },
    });
    return this.#taskFailed(task, attempt, {
      code: ErrorCode.TaskTimeout,
      message:
        `Task "${task.name}" of run "${this.key}" ${what} after ${ms} ms (attempt ${attempt})`,
    });
  }

  #armHeartbeat(): void {
    const remote = this.#remote;
    if (!remote || remote.task.heartbeat <= 0) return;
    clearTimeout(remote.heartbeat);
    const { task, attempt } = remote;
    remote.heartbeat = setTimeout(
      () =>
        this.#enqueue(() =>
          this.#remoteTimedOut(task, attempt, "sent no heartbeat", task.heartbeat)
        ),
      task.heartbeat,
    );
  }

  /**
   * Forgets the attempts in flight and a pending retry, as a run ends: the caller records
   * how they ended and tells them (abort, cancel frame).
   */
  #stopAttempts(): { remote?: RemoteAttempt; server?: ServerAttempt } {
    const stopped = { remote: this.#remote, server: this.#server };
    this.#clearRemote();
    this.#server = undefined;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    return stopped;
  }

  /** Runs the planner again at `at` (ms since the epoch), for a task's retry. */
  #armRetry(at: number): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() =>
      this.#enqueue(() => {
        this.#retryTimer = undefined;
        return this.#advance([]);
      }), Math.max(0, at - this.#env.now()));
  }

  /** Forgets the remote attempt in flight, and its timers. */
  #clearRemote(): void {
    clearTimeout(this.#remote?.timeout);
    clearTimeout(this.#remote?.heartbeat);
    this.#remote = undefined;
  }

  #violation(connection: Connection, message: string): void {
    const error = new WorkflowError(ErrorCode.ProtocolViolation, message, { key: this.key });
    connection.end(error);
    // The call is over: forget it now, so that nothing more is sent on it.
    this.#connection = undefined;
    this.#sent.clear();
    this.#hub.disconnected(message);
    this.#publish({ type: "remote.detached", peer: connection.peer, reason: message });
    if (this.#remote?.connection === connection) {
      const task = this.#taskRecord(this.#remote.task.name);
      if (task.status === "running") task.status = "pending";
      this.#clearRemote();
    }
  }

  // --- helpers ----------------------------------------------------------------------

  async #commit(): Promise<void> {
    if (this.#closed) return; // the lease was given up: the next server owns the record
    const now = this.#env.now();
    this.record.version++;
    this.record.updatedAt = now;
    this.record.lease = this.record.status === "running"
      ? { holder: this.#env.holder, until: now + this.#env.leaseTime }
      : undefined;
    await this.#env.store.save(this.record);
  }

  /** Renews this server's lease on the run when a third of it is gone (a write). */
  renewLease(): Promise<void> {
    return this.#enqueue(async () => {
      const lease = this.record.lease;
      if (this.record.status !== "running") return;
      if (lease && lease.until - this.#env.now() > (this.#env.leaseTime * 2) / 3) return;
      await this.#commit();
    });
  }

  /** Gives the run's lease up, so that another server may take the run at once (shutdown). */
  releaseLease(): Promise<void> {
    return this.#enqueue(async () => {
      if (this.record.status !== "running" || this.#closed) return;
      this.#closed = true;
      this.record.version++;
      this.record.updatedAt = this.#env.now();
      this.record.lease = undefined;
      await this.#env.store.save(this.record);
    });
  }

  #publish(
    event: WorkflowEvent extends infer E ? E extends unknown ? Omit<E, "at" | "key"> : never
      : never,
  ) {
    this.#env.publish({ ...event, at: this.#env.now(), key: this.key } as WorkflowEvent);
  }

  #taskRecord(name: string): TaskRecord {
    return this.record.tasks.find((task) => task.name === name)!;
  }

  /** Outputs the attached remote does not hold yet; marks them as sent. */
  #unsentOutputs(): Output[] {
    const outputs: Output[] = [];
    for (const name in this.record.outputs) {
      if (this.#sent.has(name)) continue;
      this.#sent.add(name);
      outputs.push({ task: name, value: this.record.outputs[name] });
    }
    return outputs;
  }

  #input(): Record<string, Value> {
    const input: Record<string, Value> = {};
    for (const [name, bytes] of Object.entries(this.record.outputs)) {
      let value = this.#values.get(name);
      if (value === undefined && !this.#values.has(name)) {
        value = decodePayload(bytes, `output of task "${name}"`);
        this.#values.set(name, value);
      }
      input[name] = value;
    }
    return input;
  }

  #sendEnd(connection: Connection): void {
    const { record } = this;
    if (record.status === "completed") {
      connection.send({ kind: "completed", completed: { outputs: this.#unsentOutputs() } });
    } else {
      connection.send({
        kind: "failed",
        failed: {
          task: record.error?.task ?? "",
          error: {
            code: record.error?.code ?? ErrorCode.RunFailed,
            message: record.error?.message ?? "",
          },
        },
      });
    }
    connection.end();
    if (this.#connection === connection) this.#connection = undefined;
  }

  #sendTaskEvent(task: TaskRecord): void {
    this.#connection?.send({ kind: "taskEvent", taskEvent: taskEvent(task) });
  }

  #context(task: TaskDeclaration, attempt: number, signal: AbortSignal): TaskContext {
    const local: LocalData = {
      get: <T extends Value = Value>(name: string): Promise<T | undefined> => {
        const bytes = this.record.local[name];
        return Promise.resolve(bytes ? decodePayload(bytes, `local "${name}"`) as T : undefined);
      },
      set: async (name: string, value: Value): Promise<void> => {
        // An abandoned attempt (timed out, cancelled) may not overwrite a newer one's data.
        signal.throwIfAborted();
        const bytes = encodePayload(value, `local "${name}"`);
        let failure: unknown;
        await this.#enqueue(async () => {
          if (signal.aborted) return;
          this.record.local[name] = bytes;
          try {
            await this.#commit();
          } catch (error) {
            failure = error;
            throw error; // the run is unloaded: its record is no longer trusted
          }
        }).catch(() => {});
        signal.throwIfAborted();
        if (failure) throw failure;
      },
    };
    return {
      key: this.key,
      task: task.name,
      attempt,
      side: "server",
      signal,
      local,
      heartbeat: () => {},
      messages: {
        send: (topic: string, value: unknown) => {
          signal.throwIfAborted();
          this.#hub.send(topic, value, { task: task.name, attempt });
          this.#publish({ type: "message", topic, from: "server", task: task.name, attempt });
        },
        request: (topic: string, value: unknown, options?: { timeout?: number }) =>
          this.#hub.request(topic, value, { task: task.name, attempt }, { ...options, signal }),
        receive: (topic: string) => this.#hub.receive(topic, signal),
      } as TaskContext["messages"],
      progress: (fraction: number, note = "") => {
        if (signal.aborted) return; // an abandoned attempt's progress is not news
        if (!Number.isFinite(fraction) || fraction < 0 || fraction > 1) {
          throw new RangeError(
            `Cannot report progress ${fraction}: expected a fraction from 0 to 1`,
          );
        }
        const clipped = note.slice(0, 1024);
        this.#taskRecord(task.name).progress = { fraction, note: clipped };
        this.#publish({ type: "task.progress", task: task.name, attempt, fraction, note: clipped });
        this.#connection?.send({
          kind: "progress",
          progress: { task: task.name, attempt, fraction, note: clipped },
        });
      },
    };
  }
}

function taskEvent(task: TaskRecord): TaskEvent {
  const event: TaskEvent = {
    task: task.name,
    attempt: task.attempts,
    status: task.status,
    durationMs: task.finishedAt && task.startedAt ? task.finishedAt - task.startedAt : 0,
  };
  if (task.error) event.error = task.error;
  return event;
}
