/**
 * `connect()`: the remote. It dials the server, runs the remote tasks it is sent, and
 * returns the run's outputs.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import type { AnyWorkflow, OutputsOf } from "../workflow/definition.ts";
import { type ConsolePrinter, type LineWriter, printerFor } from "../workflow/console.ts";
import { describeError, ErrorCode, WorkflowError } from "../workflow/errors.ts";
import type { Value } from "../workflow/payload.ts";
import type { TaskStatus } from "../workflow/state.ts";
import type { LocalData, TaskContext, TaskSet } from "../workflow/task.ts";
import { runAttempt } from "../workflow/attempt.ts";
import type { Permissions } from "../workflow/permissions.ts";
import { type PreparedIsolation, prepareIsolation } from "./sandbox.ts";
import type { Isolation, SandboxOptions } from "./review.ts";
import { type LocalStore, SQLiteLocalStore } from "./local_store.ts";
import { clientTransport, type TransportOptions } from "./credentials.ts";
import { MessageHub } from "../workflow/messages.ts";
import { decodePayload, encodePayload } from "../proto/payload.ts";
import { fromStatus } from "../proto/status.ts";
import { deserializeFrame, serializeFrame } from "../proto/transport.ts";
import {
  checkWorkflowKey,
  CONNECT_PATH,
  decodeServerFrame,
  encodeRemoteFrame,
  type Output,
  PROTOCOL_VERSION,
  type RemoteFrame,
  type ServerFrame,
} from "../proto/wire.ts";

/** Options of {@linkcode connect}. */
export interface ConnectOptions<W extends AnyWorkflow> extends TransportOptions {
  /** The server's address, `host:port`. */
  address: string;
  /** The workflow key of the run: the same key resumes the same run. */
  key: string;
  /** The remote-side implementations, from {@linkcode remoteTasks}. */
  tasks: TaskSet<W, "remote">;
  /** How long to wait for the server to answer, in milliseconds.
   *
   * @default {5000} */
  connectTimeout?: number;
  /** Print progress: `true` prints to standard output, a function receives the lines,
   * `false` prints nothing.
   *
   * @default {true} */
  progress?: boolean | LineWriter;
  /** Abandons the run's connection when aborted (the server keeps the run). */
  signal?: AbortSignal;
  /**
   * How to reconnect when the connection breaks after the run has started; `false` gives
   * up at the first break. The first connection is not retried: pointing the remote at an
   * address with no server fails after `connectTimeout`.
   *
   * @default {{ initialDelay: 100, maxDelay: 5000, giveUpAfter: 60000 }}
   */
  reconnect?: ReconnectOptions | false;
  /**
   * Where the remote keeps the data its tasks store with `ctx.local` (for example a secret
   * exponent): it survives a restart of the remote process and never reaches the server.
   * It is cleared when the run ends.
   *
   * @default {new SQLiteLocalStore()} (the file `.workflow/remote.db`)
   */
  local?: LocalStore;
  /**
   * How remote tasks run. `"process"` runs each attempt in its own `deno run` subprocess
   * granted exactly the permissions the task declares (its task set needs a module URL:
   * `remoteTasks(workflow, implementations, { module: import.meta.url })`). `"none"` runs
   * tasks in this process with all of its permissions: only for tests and trusted code.
   *
   * @default {"process"}
   */
  isolation?: Isolation;
  /**
   * The ceiling: the most permissions this remote lets any task have. When a task of the
   * definition declares more, the run is refused before any task runs, the error lists
   * every excess access, and the server records the refusal on the run.
   *
   * @default {{}} (no permissions at all)
   */
  allow?: Permissions;
  /**
   * The working folder: relative permission paths resolve against it, and task isolates
   * run in it.
   *
   * @default {Deno.cwd()}
   */
  cwd?: string;
  /** Limits of the task isolates: memory, kill grace, config file. */
  sandbox?: SandboxOptions;
}

/** How {@linkcode connect} reconnects after the connection breaks. */
export interface ReconnectOptions {
  /** The first delay before reconnecting, in ms; it doubles after each failure.
   *
   * @default {100} */
  initialDelay?: number;
  /** The longest delay between two tries, in ms.
   *
   * @default {5000} */
  maxDelay?: number;
  /** Gives up when the connection has stayed broken this long, in ms.
   *
   * @default {60000} */
  giveUpAfter?: number;
}

/** The errors after which a remote that was already attached to its run reconnects. */
const RECONNECTABLE: ReadonlySet<string> = new Set([
  ErrorCode.Unavailable,
  ErrorCode.ShuttingDown,
  ErrorCode.Internal,
  ErrorCode.RunBusy, // the server may not have seen the previous connection die yet
  ErrorCode.Conflict,
]);

type Call = grpc.ClientDuplexStream<Uint8Array, Uint8Array>;

/**
 * Connects to a workflow server as the remote of one run, runs the remote tasks the server
 * dispatches, and resolves with the outputs of every task once the run completes.
 *
 * @example Running the remote half of a workflow
 * ```ts ignore
 * import { connect } from "@tradeline/workflow/client";
 * import { tasks } from "./remote_tasks.ts";
 *
 * const outputs = await connect({ address: "127.0.0.1:50051", key: "greeting/alice", tasks });
 * console.log(outputs);
 * ```
 *
 * @param options Where to connect, which run, and the remote tasks.
 * @returns The outputs of every task, by task name.
 * @throws {WorkflowError} `Unavailable` when the server cannot be reached,
 * `DefinitionMismatch` or `UnknownWorkflow` when the server refuses the run, and
 * `RunFailed` (with the failing task's name) when the run fails.
 */
export async function connect<W extends AnyWorkflow>(
  options: ConnectOptions<W>,
): Promise<OutputsOf<W>> {
  const { tasks, address } = options;
  if (tasks?.side !== "remote") {
    throw new TypeError("Cannot connect: `tasks` must come from remoteTasks()");
  }
  const key = checkKey(options.key);
  const transport = clientTransport(address, options);
  const isolation = await prepareIsolation(options, key);
  const reconnect = options.reconnect === false ? undefined : {
    initialDelay: options.reconnect?.initialDelay ?? 100,
    maxDelay: options.reconnect?.maxDelay ?? 5000,
    giveUpAfter: options.reconnect?.giveUpAfter ?? 60_000,
  };
  const local = options.local ?? new SQLiteLocalStore();
  const printer = printerFor(options.progress);
  let attached = false;
  let brokenSince: number | undefined;
  let delay = reconnect?.initialDelay ?? 0;
  try {
    for (;;) {
      const client = new grpc.Client(address, transport.credentials, transport.options);
      let session: RemoteSession<W> | undefined;
      try {
        const timeout = brokenSince === undefined
          ? options.connectTimeout ?? 5000
          : Math.max(1, brokenSince + reconnect!.giveUpAfter - Date.now());
        await waitForReady(client, address, key, timeout, options.tls !== undefined);
        session = new RemoteSession(options, key, client, local, printer, isolation);
        const outputs = await session.run();
        await local.clear(key);
        return outputs as OutputsOf<W>;
      } catch (error) {
        if (session?.welcomed) {
          attached = true;
          brokenSince = undefined;
          delay = reconnect?.initialDelay ?? 0;
        }
        const code = (error as WorkflowError).code;
        if (options.signal?.aborted || !reconnect || !attached || !RECONNECTABLE.has(code)) {
          // The run is over (not merely left by this remote): its private data goes too.
          const over = code === ErrorCode.RunFailed || code === ErrorCode.Cancelled;
          if (over && !options.signal?.aborted) await local.clear(key);
          if (options.signal?.aborted) {
            throw new WorkflowError(
              ErrorCode.Cancelled,
              `Left run "${key}": the signal given to connect() was aborted. The run goes on at the server; connect again with the same key to continue it`,
              { key, cause: error },
            );
          }
          throw error;
        }
        brokenSince ??= Date.now();
        if (Date.now() - brokenSince >= reconnect.giveUpAfter) {
          throw new WorkflowError(
            ErrorCode.Unavailable,
            `Lost the connection to ${address} for run "${key}" and could not get it back within ${reconnect.giveUpAfter} ms: ${
              (error as Error).message
            }`,
            { key, cause: error },
          );
        }
        const wait = Math.round(delay / 2 + Math.random() * delay / 2);
        printer?.line(
          key,
          `connection lost (${(error as Error).message}); reconnecting in ${wait} ms`,
          "yellow",
        );
        await pause(wait, options.signal);
        delay = Math.min(delay * 2, reconnect.maxDelay);
      } finally {
        client.close();
      }
    }
  } finally {
    await isolation.close();
    if (options.local === undefined) await local.close();
  }
}

/** Waits `ms`, or less when `signal` aborts. */
function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}

function checkKey(key: string): string {
  try {
    return checkWorkflowKey(key, "Cannot connect");
  } catch (error) {
    throw new TypeError((error as Error).message);
  }
}

function waitForReady(
  client: grpc.Client,
  address: string,
  key: string,
  timeout: number,
  tls: boolean,
): Promise<void> {
  return new Promise((resolve, reject) => {
    client.waitForReady(Date.now() + timeout, (error) => {
      if (!error) return resolve();
      const hint = tls
        ? "is it running and listening there, and does the TLS handshake succeed (CA, client certificate, server name)?"
        : "is it running and listening there? If the server uses TLS, pass connect({ tls })";
      reject(
        new WorkflowError(
          ErrorCode.Unavailable,
          `Cannot reach the workflow server at ${address} within ${timeout} ms (run "${key}"); ${hint}`,
          { key, cause: error },
        ),
      );
    });
  });
}

interface RunningTask {
  name: string;
  attempt: number;
  abort: AbortController;
}

/** One call: hello, then frames until the run ends or the call breaks. */
class RemoteSession<W extends AnyWorkflow> {
  readonly #options: ConnectOptions<W>;
  readonly #key: string;
  readonly #client: grpc.Client;
  readonly #printer?: ConsolePrinter;
  readonly #outputs = new Map<string, Uint8Array>();
  readonly #values = new Map<string, Value>();
  readonly #local: LocalStore;
  readonly #running = new Set<RunningTask>();
  #call?: Call;
  /** Whether the server welcomed this call: the remote is attached to its run. */
  welcomed = false;
  readonly #hub: MessageHub;
  readonly #isolation: PreparedIsolation;

  constructor(
    options: ConnectOptions<W>,
    key: string,
    client: grpc.Client,
    local: LocalStore,
    printer: ConsolePrinter | undefined,
    isolation: PreparedIsolation,
  ) {
    this.#options = options;
    this.#key = key;
    this.#client = client;
    this.#local = local;
    this.#printer = printer;
    this.#isolation = isolation;
    this.#hub = new MessageHub({
      side: "remote",
      workflow: options.tasks.workflow,
      key,
      handlers: options.tasks.handlers,
      transmit: (message) => {
        const call = this.#call;
        if (!call || call.writableEnded || call.destroyed || !this.welcomed) return false;
        call.write(encodeRemoteFrame({ kind: "message", message }));
        return true;
      },
    });
  }

  get #workflow(): AnyWorkflow {
    return this.#options.tasks.workflow;
  }

  run(): Promise<Record<string, Value>> {
    const workflow = this.#workflow;
    return new Promise((resolve, reject) => {
      let outcome: { ok: true; outputs: Record<string, Value> } | {
        ok: false;
        error: WorkflowError;
      } | undefined;
      const call = this.#client.makeBidiStreamRequest(
        CONNECT_PATH,
        serializeFrame,
        deserializeFrame,
        new grpc.Metadata(),
        {},
      );
      this.#call = call;
      const abort = () => call.cancel();
      this.#options.signal?.addEventListener("abort", abort, { once: true });
      call.on("data", (bytes: Uint8Array) => {
        try {
          const ended = this.#receive(decodeServerFrame(bytes));
          if (ended) {
            outcome ??= ended; // a refusal ends the run before the server's "failed" frame
            if (!call.writableEnded) call.end();
          }
        } catch (error) {
          outcome = { ok: false, error: error as WorkflowError };
          call.cancel();
        }
      });
      call.on("error", (error: grpc.ServiceError) => {
        outcome ??= { ok: false, error: fromStatus(error, this.#key) };
      });
      call.on("status", (status: grpc.StatusObject) => {
        this.#options.signal?.removeEventListener("abort", abort);
        for (const task of this.#running) {
          task.abort.abort(new WorkflowError(ErrorCode.Unavailable, "The call ended"));
        }
        this.#hub.disconnected("the call ended");
        if (!outcome) {
          outcome = {
            ok: false,
            error: status.code === grpc.status.OK
              ? new WorkflowError(
                ErrorCode.Unavailable,
                `The server ended run "${this.#key}" before it finished`,
                { key: this.#key },
              )
              : fromStatus(status, this.#key),
          };
        }
        if (outcome.ok) resolve(outcome.outputs);
        else reject(outcome.error);
      });
      this.#send({
        kind: "hello",
        hello: {
          protocolVersion: PROTOCOL_VERSION,
          workflowKey: this.#key,
          definitionName: workflow.name,
          definitionVersion: workflow.version,
          fingerprint: workflow.fingerprint,
          tasks: workflow.tasks.map((task) => ({ name: task.name, side: task.side })),
        },
      });
    });
  }

  #send(frame: RemoteFrame): void {
    const call = this.#call;
    if (!call || call.writableEnded || call.destroyed) return;
    call.write(encodeRemoteFrame(frame));
  }

  /** Handles one frame; returns the run's outcome when the frame ends it. */
  #receive(frame: ServerFrame):
    | { ok: true; outputs: Record<string, Value> }
    | { ok: false; error: WorkflowError }
    | undefined {
    switch (frame.kind) {
      case "welcome": {
        this.welcomed = true;
        if (this.#isolation.refusal) {
          // Refused before any task runs: the server records why on the run.
          const error = describeError(this.#isolation.refusal);
          this.#send({ kind: "refusal", refusal: { error } });
          return { ok: false, error: this.#isolation.refusal };
        }
        this.#store(frame.welcome.outputs);
        const done = frame.welcome.tasks.filter((t) =>
          t.status === "completed" || t.status === "skipped"
        );
        this.#printer?.line(
          this.#key,
          done.length === 0
            ? `connected: run starts (${this.#workflow.tasks.length} tasks)`
            : done.length === this.#workflow.tasks.length
            ? `connected: the run has already finished (${done.length} tasks done)`
            : `connected: run resumes at task ${
              frame.welcome.nextTask + 1
            } of ${this.#workflow.tasks.length} (${done.length} done)`,
        );
        return;
      }
      case "dispatch":
        this.#store(frame.dispatch.outputs);
        this.#dispatch(frame.dispatch.task, frame.dispatch.attempt);
        return;
      case "taskEvent": {
        const { task, status, attempt, durationMs, error } = frame.taskEvent;
        this.#printTask(task, status, {
          attempt,
          durationMs: status === "completed" ? durationMs : undefined,
          error,
        });
        return;
      }
      case "progress":
        this.#printProgress(frame.progress.task, frame.progress.fraction, frame.progress.note);
        return;
      case "cancel":
        for (const task of this.#running) {
          if (task.name === frame.cancel.task && task.attempt === frame.cancel.attempt) {
            task.abort.abort(
              new WorkflowError(
                ErrorCode.Cancelled,
                `Cancelled by the server: ${frame.cancel.reason}`,
                {
                  key: this.#key,
                  task: task.name,
                },
              ),
            );
          }
        }
        return;
      case "completed": {
        this.#store(frame.completed.outputs);
        this.#printer?.line(this.#key, "run completed", "green");
        return { ok: true, outputs: this.#inputs() };
      }
      case "failed": {
        const { task, error } = frame.failed;
        if (error.code === ErrorCode.Cancelled) {
          this.#printer?.line(this.#key, `run cancelled: ${error.message}`, "magenta");
          return {
            ok: false,
            error: new WorkflowError(ErrorCode.Cancelled, error.message, {
              key: this.#key,
              ...(task ? { task } : {}),
            }),
          };
        }
        this.#printer?.line(
          this.#key,
          `run failed${task ? ` at task "${task}"` : ""}: ${error.message}`,
          "red",
        );
        return {
          ok: false,
          error: new WorkflowError(
            error.code === ErrorCode.Cancelled ? ErrorCode.Cancelled : ErrorCode.RunFailed,
            `Run "${this.#key}" failed${
              task ? ` at task "${task}"` : ""
            }: ${error.code}: ${error.message}`,
            { key: this.#key, ...(task ? { task } : {}) },
          ),
        };
      }
      case "message":
        this.#hub.deliver(frame.message);
        return;
    }
  }

  #store(outputs: Output[]): void {
    for (const output of outputs) {
      this.#outputs.set(output.task, output.value);
      this.#values.delete(output.task);
    }
  }

  #inputs(): Record<string, Value> {
    const input: Record<string, Value> = {};
    for (const [name, bytes] of this.#outputs) {
      if (!this.#values.has(name)) {
        this.#values.set(name, decodePayload(bytes, `output of task "${name}"`));
      }
      input[name] = this.#values.get(name);
    }
    return input;
  }

  #dispatch(name: string, attempt: number): void {
    if (this.#isolation.refusal) return; // the run was refused: nothing runs
    const task = this.#workflow.task(name);
    if (!task || task.side !== "remote") {
      throw new WorkflowError(
        ErrorCode.ProtocolViolation,
        `The server dispatched "${name}", which is not a remote task of workflow "${this.#workflow.name}"`,
        { key: this.#key, task: name },
      );
    }
    const running: RunningTask = { name, attempt, abort: new AbortController() };
    this.#running.add(running);
    this.#printTask(name, "running", { attempt });
    const started = performance.now();
    const context = this.#context(name, attempt, running.abort.signal);
    (async () => {
      let outcome;
      try {
        outcome = this.#isolation.run
          ? await this.#isolation.run(task, this.#inputs(), context, running.abort)
          : await runAttempt(
            this.#options.tasks.hooks(name),
            task,
            this.#inputs(),
            context,
            running.abort,
          );
      } catch (error) {
        outcome = { ok: false as const, error };
      }
      this.#running.delete(running);
      const durationMs = performance.now() - started;
      if (outcome.ok) {
        try {
          const output = encodePayload(outcome.output, "output");
          this.#send({ kind: "result", result: { task: name, attempt, output } });
          // Kept here: the server does not send a remote's own outputs back to it.
          this.#store([{ task: name, value: output }]);
          this.#printTask(name, outcome.skipped ? "skipped" : "completed", { attempt, durationMs });
          return;
        } catch (error) {
          outcome = {
            ok: false as const,
            error: new WorkflowError(
              ErrorCode.InvalidPayload,
              `Task "${name}" of run "${this.#key}" returned an output that cannot be sent: ${
                (error as Error).message
              }`,
              { key: this.#key, task: name, attempt, cause: error },
            ),
          };
        }
      }
      // An attempt stopped by the server (cancelled, timed out) failed for that reason, whatever
      // the task or its isolate reported as it was stopped.
      const reason = running.abort.signal.aborted ? running.abort.signal.reason : undefined;
      const error = describeError(reason instanceof WorkflowError ? reason : outcome.error);
      this.#printTask(name, error.code === ErrorCode.Cancelled ? "cancelled" : "failed", {
        attempt,
        error,
      });
      this.#send({ kind: "failure", failure: { task: name, attempt, error } });
    })();
  }

  #context(task: string, attempt: number, signal: AbortSignal): TaskContext {
    const local = this.#local;
    const key = this.#key;
    const data: LocalData = {
      async get<T extends Value = Value>(name: string): Promise<T | undefined> {
        const bytes = await local.get(key, name);
        return bytes ? decodePayload(bytes, `local "${name}"`) as T : undefined;
      },
      async set(name: string, value: Value): Promise<void> {
        // An abandoned attempt (timed out, cancelled) may not overwrite a newer one's data.
        signal.throwIfAborted();
        await local.set(key, name, encodePayload(value, `local "${name}"`));
      },
    };
    return {
      key: this.#key,
      task,
      attempt,
      side: "remote",
      signal,
      local: data,
      heartbeat: () => this.#send({ kind: "heartbeat", heartbeat: { task, attempt } }),
      messages: {
        send: (topic: string, value: unknown) => {
          signal.throwIfAborted();
          this.#hub.send(topic, value, { task, attempt });
        },
        request: (topic: string, value: unknown, options?: { timeout?: number }) =>
          this.#hub.request(topic, value, { task, attempt }, { ...options, signal }),
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
        this.#send({ kind: "progress", progress: { task, attempt, fraction, note: clipped } });
        this.#printProgress(task, fraction, clipped);
      },
    };
  }

  #printProgress(name: string, fraction: number, note: string): void {
    const task = this.#workflow.task(name);
    if (!task || !this.#printer) return;
    this.#printer.progress(this.#key, task, this.#workflow.tasks.length, fraction, note);
  }

  #printTask(
    name: string,
    status: TaskStatus,
    detail: Parameters<ConsolePrinter["task"]>[4],
  ): void {
    const task = this.#workflow.task(name);
    if (!task || !this.#printer) return;
    this.#printer.task(this.#key, task, this.#workflow.tasks.length, status, detail);
  }
}
