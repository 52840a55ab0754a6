/**
 * Events from a store that has none: read it every so often and describe what changed
 * between two reads as the server's events would have.
 *
 * @module
 */
import type { RunView, TaskView } from "../server/dashboard.ts";
import type { ListOptions } from "../server/store.ts";
import type { RunSummary, WorkflowEvent } from "../workflow/state.ts";

/** What polling needs from a store. */
export interface Pollable {
  list(options: ListOptions): Promise<RunSummary[]>;
  run(key: string): Promise<RunView | undefined>;
}

/** Options of {@linkcode pollEvents}. */
export interface PollOptions {
  /** Follow this run only. */
  key?: string;
  /** Otherwise, the runs to follow. */
  filter?: Pick<ListOptions, "keyPrefix" | "definition">;
  /** Between two reads, in ms. */
  interval: number;
  signal: AbortSignal;
  /** Called after the first read, the baseline: changes from then on are seen. */
  onReady?: () => void;
}

const PAGE = 1000;

/**
 * Reads the store every `interval` ms and yields the events that explain the changes. The
 * first read is the baseline: runs as they already are yield nothing.
 */
export async function* pollEvents(
  store: Pollable,
  options: PollOptions,
): AsyncGenerator<WorkflowEvent> {
  const known = new Map<string, RunView>();
  let first = true;
  while (!options.signal.aborted) {
    const changed: RunView[] = [];
    if (options.key !== undefined) {
      const run = await store.run(options.key);
      if (run && known.get(run.key)?.version !== run.version) changed.push(run);
    } else {
      const seen = new Set<string>();
      let after: string | undefined;
      for (;;) {
        const page = await store.list({ ...options.filter, after, limit: PAGE });
        for (const summary of page) {
          seen.add(summary.key);
          const before = known.get(summary.key);
          if (before && before.updatedAt === summary.updatedAt) continue;
          const run = await store.run(summary.key);
          if (run && before?.version !== run.version) changed.push(run);
        }
        if (page.length < PAGE) break;
        after = page[page.length - 1].key;
      }
      for (const key of known.keys()) if (!seen.has(key)) known.delete(key);
    }
    for (const run of changed) {
      if (!first) yield* diff(known.get(run.key), run, Date.now());
      known.set(run.key, run);
    }
    if (first) options.onReady?.();
    first = false;
    await sleep(options.interval, options.signal);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

const PENDING: Omit<TaskView, "name" | "side"> = { status: "pending", attempts: 0 };

/**
 * The events that take a run from `before` (or from nothing) to `after`, in the order the
 * server would have sent them.
 */
export function diff(before: RunView | undefined, after: RunView, now: number): WorkflowEvent[] {
  const key = after.key;
  const events: WorkflowEvent[] = [];
  if (!before) {
    events.push({
      type: "run.started",
      key,
      at: after.createdAt,
      definition: after.definition.name,
    });
  }
  after.tasks.forEach((task, i) => {
    const old = before?.tasks[i] ?? { ...PENDING, name: task.name, side: task.side };
    const base = { key, task: task.name, side: task.side, attempt: task.attempts };
    const restarted = task.attempts > old.attempts && task.startedAt !== undefined;
    if (restarted || (task.status === "running" && old.status !== "running")) {
      events.push({ ...base, type: "task.started", at: task.startedAt ?? now });
    }
    if (task.status !== old.status || restarted) {
      const at = task.finishedAt ?? now;
      const error = task.error ?? { code: "Unknown", message: "" };
      switch (task.status) {
        case "completed":
          events.push({ ...base, type: "task.completed", at, durationMs: task.durationMs ?? 0 });
          break;
        case "skipped":
          events.push({ ...base, type: "task.skipped", at });
          break;
        case "failed":
          events.push({ ...base, type: "task.failed", at, error });
          break;
        case "retrying":
          events.push({ ...base, type: "task.retrying", at: now, error });
          break;
      }
    }
    const progress = task.progress;
    if (
      progress && (task.status === "running" || task.status === "retrying") &&
      (progress.fraction !== old.progress?.fraction || progress.note !== old.progress?.note)
    ) {
      events.push({
        type: "task.progress",
        key,
        at: now,
        task: task.name,
        attempt: task.attempts,
        fraction: progress.fraction,
        note: progress.note,
      });
    }
  });
  if (after.status !== (before?.status ?? "running")) {
    const at = after.updatedAt;
    if (after.status === "completed") events.push({ type: "run.completed", key, at });
    if (after.status === "failed") {
      events.push({
        type: "run.failed",
        key,
        at,
        error: after.error ?? { code: "Unknown", message: "" },
      });
    }
    if (after.status === "cancelled") {
      events.push({ type: "run.cancelled", key, at, reason: after.error?.message ?? "" });
    }
  }
  return events;
}
