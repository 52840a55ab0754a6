/**
 * Live messages between the two sides of a run: one-way messages and request/reply, declared
 * in the definition. The same hub runs on both sides; it is plain code, tested without a
 * socket.
 *
 * Delivery: in order, at most once per connection. A message sent while the other side is not
 * connected is not queued: `send` throws and `request` rejects with `Unavailable`, so the
 * sender decides whether to try again. Requests still waiting when the connection breaks
 * are rejected the same way.
 *
 * @module
 */
import type { AnyWorkflow, MessageDeclaration, Side } from "./definition.ts";
import { ErrorCode, WorkflowError } from "./errors.ts";
import type { Value } from "./payload.ts";
import { decodePayload, encodePayload } from "../proto/payload.ts";
import type { LiveMessage } from "../proto/wire.ts";

/** A message as it travels: the wire's `LiveMessage` (`task` is `""` when the run itself
 * sends, and a reply's `replyTo` is the sequence of the request it answers). */
export type MessageFrame = LiveMessage;

/** Who sends a message: a task attempt, or the run itself. */
export interface MessageSender {
  task: string;
  attempt: number;
}

/** A handler for messages of one topic that arrive at this side. */
export type MessageHandler = (value: Value, info: { key: string; topic: string }) => unknown;

/** Most messages of one topic kept for a task that has not asked for them yet. */
export const MAX_QUEUED_MESSAGES = 10_000;

/** Most bytes of messages kept, all topics together, for tasks that have not asked yet. */
export const MAX_QUEUED_BYTES = 16 * 1024 * 1024;

/** The default time a request waits for its reply, in ms. */
export const DEFAULT_REQUEST_TIMEOUT = 30_000;

interface Pending {
  topic: string;
  resolve(value: Value): void;
  reject(error: unknown): void;
  timer: ReturnType<typeof setTimeout>;
}

interface Waiter {
  resolve(value: Value): void;
  reject(error: unknown): void;
}

/** What a {@linkcode MessageHub} needs from the side that owns it. */
export interface MessageHubOptions {
  /** The side this hub is on. */
  side: Side;
  /** The definition, for its message declarations. */
  workflow: AnyWorkflow;
  /** The run's workflow key. */
  key: string;
  /** Handlers by topic, for messages that arrive at this side. */
  handlers?: Readonly<Record<string, MessageHandler>>;
  /** Sends a frame; returns `false` when the other side is not connected. */
  transmit(frame: MessageFrame): boolean;
  /** Called for every message (not reply) that arrives, after it is decoded. */
  observe?(frame: MessageFrame): void;
}

/** One side's end of a run's live messages. */
export class MessageHub {
  readonly #options: MessageHubOptions;
  #sequence = 0;
  /** Counts connections: a reply prepared on one is never sent on the next. */
  #connection = 0;
  readonly #pending = new Map<number, Pending>();
  readonly #queues = new Map<string, { value: Value; bytes: number }[]>();
  #queuedBytes = 0;
  readonly #waiters = new Map<string, Waiter[]>();

  constructor(options: MessageHubOptions) {
    this.#options = options;
  }

  get #other(): Side {
    return this.#options.side === "server" ? "remote" : "server";
  }

  #declaration(topic: string, direction: "out" | "in"): MessageDeclaration {
    const { workflow, side } = this.#options;
    const declaration = workflow.messages.find((m: MessageDeclaration) => m.name === topic);
    if (!declaration) {
      const known = workflow.messages.map((m: MessageDeclaration) => `"${m.name}"`).join(", ");
      throw new WorkflowError(
        direction === "out" ? ErrorCode.InvalidPayload : ErrorCode.ProtocolViolation,
        `Message topic "${topic}" is not declared in workflow "${workflow.name}" (declared: ${
          known || "none"
        })`,
        { key: this.#options.key },
      );
    }
    const from = direction === "out" ? side : this.#other;
    if (declaration.from !== from) {
      throw new WorkflowError(
        direction === "out" ? ErrorCode.InvalidPayload : ErrorCode.ProtocolViolation,
        `Message topic "${topic}" of workflow "${workflow.name}" is sent by the ${declaration.from}, not the ${from}`,
        { key: this.#options.key },
      );
    }
    return declaration;
  }

  #transmit(frame: Omit<MessageFrame, "sequence">): number {
    const sequence = ++this.#sequence;
    if (!this.#options.transmit({ ...frame, sequence })) {
      throw new WorkflowError(
        ErrorCode.Unavailable,
        `Cannot send message "${frame.topic}" of run "${this.#options.key}": the ${this.#other} is not connected; it was not sent`,
        { key: this.#options.key },
      );
    }
    return sequence;
  }

  /**
   * Sends a one-way message.
   *
   * @throws {WorkflowError} `Unavailable` when the other side is not connected,
   * `InvalidPayload` when the topic is not declared for this side or the value cannot be sent.
   */
  send(topic: string, value: unknown, from: MessageSender): void {
    const declaration = this.#declaration(topic, "out");
    if (declaration.request) {
      throw new WorkflowError(
        ErrorCode.InvalidPayload,
        `Message topic "${topic}" expects a reply: use request(), not send()`,
        { key: this.#options.key },
      );
    }
    const bytes = encodePayload(value, `message "${topic}"`);
    this.#transmit({ ...from, topic, replyTo: 0, value: bytes });
  }

  /**
   * Sends a request and resolves with the other side's reply.
   *
   * @throws {WorkflowError} `Unavailable` when the other side is not connected or goes away
   * before it replies, `TaskTimeout` when no reply comes within `timeout` ms, and the
   * handler's error when the other side's handler throws.
   */
  request(
    topic: string,
    value: unknown,
    from: MessageSender,
    options: { timeout?: number; signal?: AbortSignal } = {},
  ): Promise<Value> {
    try {
      const declaration = this.#declaration(topic, "out");
      if (!declaration.request) {
        throw new WorkflowError(
          ErrorCode.InvalidPayload,
          `Message topic "${topic}" is one-way: use send(), not request()`,
          { key: this.#options.key },
        );
      }
      const bytes = encodePayload(value, `message "${topic}"`);
      const sequence = this.#transmit({ ...from, topic, replyTo: 0, value: bytes });
      const timeout = options.timeout ?? DEFAULT_REQUEST_TIMEOUT;
      return new Promise<Value>((resolve, reject) => {
        const settle = () => {
          clearTimeout(pending.timer);
          this.#pending.delete(sequence);
          options.signal?.removeEventListener("abort", onAbort);
        };
        const onAbort = () => {
          settle();
          reject(options.signal!.reason);
        };
        const pending: Pending = {
          topic,
          resolve: (reply) => {
            settle();
            resolve(reply);
          },
          reject: (error) => {
            settle();
            reject(error);
          },
          timer: setTimeout(() => {
            pending.reject(
              new WorkflowError(
                ErrorCode.TaskTimeout,
                `No reply to message "${topic}" of run "${this.#options.key}" within ${timeout} ms`,
                { key: this.#options.key },
              ),
            );
          }, timeout),
        };
        this.#pending.set(sequence, pending);
        if (options.signal?.aborted) onAbort();
        else options.signal?.addEventListener("abort", onAbort, { once: true });
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Resolves with the next one-way message of `topic` that arrives at this side (one that
   * arrived earlier and was not taken yet comes first).
   */
  receive(topic: string, signal?: AbortSignal): Promise<Value> {
    try {
      const declaration = this.#declaration(topic, "in");
      if (declaration.request) {
        throw new WorkflowError(
          ErrorCode.InvalidPayload,
          `Message topic "${topic}" is a request: answer it with a handler ("on"), not receive()`,
          { key: this.#options.key },
        );
      }
    } catch (error) {
      return Promise.reject(error);
    }
    const queue = this.#queues.get(topic);
    const first = queue?.shift();
    if (first) {
      this.#queuedBytes -= first.bytes;
      return Promise.resolve(first.value);
    }
    return new Promise((resolve, reject) => {
      const waiters = this.#waiters.get(topic) ?? [];
      this.#waiters.set(topic, waiters);
      const onAbort = () => {
        const index = waiters.indexOf(waiter);
        if (index >= 0) waiters.splice(index, 1);
        reject(signal!.reason);
      };
      const waiter: Waiter = {
        resolve: (value) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(value);
        },
        reject,
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      waiters.push(waiter);
    });
  }

  /**
   * Handles a message frame from the other side.
   *
   * @throws {WorkflowError} `ProtocolViolation` for an undeclared topic, a topic sent from
   * the wrong side, or a value that cannot be decoded.
   */
  deliver(frame: MessageFrame): void {
    if (frame.replyTo > 0) {
      const pending = this.#pending.get(frame.replyTo);
      if (!pending) return; // a reply after a timeout or a reconnection: nobody waits for it
      let reply: Value;
      try {
        reply = decodePayload(frame.value, `reply to message "${pending.topic}"`);
      } catch (error) {
        pending.reject(error);
        throw violation(error);
      }
      const body = reply as {
        ok?: boolean;
        value?: Value;
        error?: { code: string; message: string };
      };
      if (body?.ok === true) pending.resolve(body.value);
      else {
        pending.reject(
          new WorkflowError(
            ErrorCode.TaskFailed,
            `The ${this.#other} could not answer message "${pending.topic}": ${
              body?.error?.message ?? "no reason given"
            }`,
            { key: this.#options.key },
          ),
        );
      }
      return;
    }
    const declaration = this.#declaration(frame.topic, "in");
    let value: Value;
    try {
      value = decodePayload(frame.value, `message "${frame.topic}"`);
    } catch (error) {
      throw violation(error);
    }
    this.#options.observe?.(frame);
    const handler = this.#options.handlers?.[frame.topic];
    const info = { key: this.#options.key, topic: frame.topic };
    if (declaration.request) {
      const connection = this.#connection;
      const answer = (body: unknown) => {
        // The request's connection is gone: its sequence numbers mean nothing on a new one.
        if (connection !== this.#connection) return;
        let value: Uint8Array;
        try {
          value = encodePayload(body, `reply to message "${frame.topic}"`);
        } catch (error) {
          value = encodePayload({ ok: false, error: describe(error) }, "reply");
        }
        this.#options.transmit({
          task: "",
          attempt: 0,
          topic: frame.topic,
          sequence: ++this.#sequence,
          replyTo: frame.sequence,
          value,
        });
      };
      if (!handler) {
        answer({
          ok: false,
          error: {
            code: ErrorCode.InvalidImplementation,
            message: `the ${this.#options.side} has no handler for "${frame.topic}"`,
          },
        });
        return;
      }
      Promise.resolve()
        .then(() => handler(value, info))
        .then(
          (reply) => answer({ ok: true, value: reply }),
          (error) => answer({ ok: false, error: describe(error) }),
        );
      return;
    }
    if (handler) {
      try {
        handler(value, info);
      } catch { /* a one-way handler's failure is the receiver's own business */ }
    }
    const waiter = this.#waiters.get(frame.topic)?.shift();
    if (waiter) return waiter.resolve(value);
    if (handler) return; // handled; nobody else asked for it
    // Kept for a task that asks later; the oldest go first when the bounds are reached.
    const queue = this.#queues.get(frame.topic) ?? [];
    this.#queues.set(frame.topic, queue);
    queue.push({ value, bytes: frame.value.byteLength });
    this.#queuedBytes += frame.value.byteLength;
    while (queue.length > MAX_QUEUED_MESSAGES || this.#queuedBytes > MAX_QUEUED_BYTES) {
      const dropped = this.#longest().shift()!;
      this.#queuedBytes -= dropped.bytes;
    }
  }

  #longest(): { value: Value; bytes: number }[] {
    let longest: { value: Value; bytes: number }[] = [];
    for (const queue of this.#queues.values()) if (queue.length > longest.length) longest = queue;
    return longest;
  }

  /** The connection broke: requests waiting for a reply fail with `Unavailable`. */
  disconnected(reason: string): void {
    this.#sequence = 0;
    this.#connection++;
    // At most once per connection: what the gone side sent and nobody took is dropped.
    this.#queues.clear();
    this.#queuedBytes = 0;
    for (const pending of [...this.#pending.values()]) {
      pending.reject(
        new WorkflowError(
          ErrorCode.Unavailable,
          `No reply to message "${pending.topic}" of run "${this.#options.key}": the connection ended (${reason})`,
          { key: this.#options.key },
        ),
      );
    }
  }
}

function describe(error: unknown): { code: string; message: string } {
  if (error instanceof WorkflowError) return { code: error.code, message: error.message };
  return {
    code: ErrorCode.TaskFailed,
    message: error instanceof Error ? error.message : String(error),
  };
}

function violation(error: unknown): WorkflowError {
  return new WorkflowError(ErrorCode.ProtocolViolation, (error as Error).message, { cause: error });
}
