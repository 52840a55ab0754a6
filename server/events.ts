/**
 * A broadcast of workflow events to any number of async-iterable subscribers.
 *
 * @module
 */
import type { WorkflowEvent } from "../workflow/state.ts";

/** Options of {@linkcode EventHub.subscribe}. */
export interface SubscribeOptions {
  /** Ends the iteration when aborted. */
  signal?: AbortSignal;
  /** Events a slow subscriber may fall behind by before the oldest are dropped.
   *
   * @default {10000} */
  buffer?: number;
}

interface Subscriber {
  queue: WorkflowEvent[];
  limit: number;
  wake?: () => void;
  closed: boolean;
}

/** Fans events out to subscribers; publishing never blocks. */
export class EventHub {
  readonly #subscribers = new Set<Subscriber>();

  /** True when someone listens, so callers can skip building events nobody reads. */
  get listening(): boolean {
    return this.#subscribers.size > 0;
  }

  /** Delivers `event` to every subscriber. */
  publish(event: WorkflowEvent): void {
    for (const subscriber of this.#subscribers) {
      if (subscriber.queue.length >= subscriber.limit) subscriber.queue.shift();
      subscriber.queue.push(event);
      subscriber.wake?.();
    }
  }

  /** Ends every subscription. */
  close(): void {
    for (const subscriber of this.#subscribers) {
      subscriber.closed = true;
      subscriber.wake?.();
    }
    this.#subscribers.clear();
  }

  /**
   * Events published from now on (from this call, not from the first `next()`), until the
   * signal aborts or the hub closes. Events wait in a bounded buffer until they are read.
   */
  subscribe(options: SubscribeOptions = {}): AsyncGenerator<WorkflowEvent> {
    const subscriber: Subscriber = { queue: [], limit: options.buffer ?? 10_000, closed: false };
    if (options.signal?.aborted) subscriber.closed = true;
    else this.#subscribers.add(subscriber);
    const onAbort = () => {
      subscriber.closed = true;
      subscriber.wake?.();
    };
    options.signal?.addEventListener("abort", onAbort, { once: true });
    return this.#read(subscriber, () => options.signal?.removeEventListener("abort", onAbort));
  }

  async *#read(subscriber: Subscriber, cleanUp: () => void): AsyncGenerator<WorkflowEvent> {
    try {
      while (true) {
        while (subscriber.queue.length > 0) yield subscriber.queue.shift()!;
        if (subscriber.closed) return;
        await new Promise<void>((resolve) => subscriber.wake = resolve);
        subscriber.wake = undefined;
      }
    } finally {
      this.#subscribers.delete(subscriber);
      cleanUp();
    }
  }
}
