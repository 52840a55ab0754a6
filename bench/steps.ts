/**
 * Step latency: one run of consecutive no-op remote tasks, server and remote in this process
 * on loopback, timed at the remote from the start of one task to the start of the next (a
 * result, its commit, the next dispatch).
 *
 * @module
 */
import { connect, MemoryLocalStore, MemoryStore, type RunStore, serve } from "../mod.ts";
import { encodeRecord } from "../server/_record_codec.ts";
import type { RunRecord, RunSummary } from "../workflow/state.ts";
import { type BenchWorkflow, chain } from "./_workflows.ts";
import { percentile, summarize, type Summary } from "./_stats.ts";

/** The result of one step-latency run. */
export interface StepResult {
  /** Per step, ms. */
  step: Summary;
  /** Steps per second over the whole run (hello to completion). */
  stepsPerS: number;
}

/** A store that measures the encoded size of every record saved through it. */
class SizingStore implements RunStore {
  readonly sizes: number[] = [];
  readonly #inner: RunStore;
  constructor(inner: RunStore) {
    this.#inner = inner;
  }
  load(key: string): Promise<RunRecord | undefined> {
    return this.#inner.load(key);
  }
  save(record: RunRecord): Promise<void> {
    this.sizes.push(encodeRecord(record).byteLength);
    return this.#inner.save(record);
  }
  list(): Promise<RunSummary[]> {
    return this.#inner.list();
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Runs `steps` remote no-op tasks in one run and measures each step.
 *
 * @param store `"memory"` (a new `MemoryStore`), or a store to use (and leave open).
 */
export async function stepLatency(
  steps: number,
  store: "memory" | RunStore,
  key = "bench/steps",
): Promise<StepResult> {
  const starts: number[] = [];
  const flow = chain(steps, () => starts.push(performance.now()));
  const runStore = store === "memory" ? new MemoryStore() : store;
  const server = await serve({ workflows: flow.server, store: runStore, port: 0, progress: false });
  try {
    const t0 = performance.now();
    await connect({
      address: server.address,
      key,
      tasks: flow.remote,
      progress: false,
      local: new MemoryLocalStore(),
      isolation: "none",
    });
    const total = performance.now() - t0;
    const gaps = starts.slice(1).map((t, i) => t - starts[i]);
    return { step: summarize(gaps), stepsPerS: steps / (total / 1000) };
  } finally {
    await server.shutdown({ grace: 2000 });
    if (store === "memory") await runStore.close();
  }
}

/**
 * The median encoded size of a run's record over one run of `flow`: the size a raw commit of
 * the baselines writes.
 */
export async function recordSize(flow: BenchWorkflow): Promise<number> {
  const store = new SizingStore(new MemoryStore());
  const server = await serve({ workflows: flow.server, store, port: 0, progress: false });
  try {
    await connect({
      address: server.address,
      key: "bench/size",
      tasks: flow.remote,
      progress: false,
      local: new MemoryLocalStore(),
      isolation: "none",
    });
  } finally {
    await server.shutdown({ grace: 2000 });
  }
  return percentile([...store.sizes].sort((a, b) => a - b), 50);
}
