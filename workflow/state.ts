/**
 * The persisted record of a run, and the events that describe its progress.
 *
 * @module
 */
import type { Side } from "./definition.ts";

/** The version of the {@linkcode RunRecord} layout; stores migrate older records. */
export const RECORD_SCHEMA = 1;

/** Where a run stands. */
export type RunStatus = "running" | "completed" | "failed" | "cancelled";

/** Where a task stands. */
export type TaskStatus =
  | "pending"
  | "running"
  | "completed"
  | "failed"
  | "skipped"
  | "retrying"
  | "cancelled";

/** A recorded error. */
export interface ErrorRecord {
  /** A stable {@linkcode ErrorCode}. */
  code: string;
  /** What happened. */
  message: string;
}

/** The persisted state of one task of a run. */
export interface TaskRecord {
  /** The task's name. */
  name: string;
  /** Where it runs. */
  side: Side;
  /** Where it stands. */
  status: TaskStatus;
  /** Attempts started so far. */
  attempts: number;
  /** When the current attempt started (ms since the epoch). */
  startedAt?: number;
  /** When the task completed or finally failed (ms since the epoch). */
  finishedAt?: number;
  /** The last error. */
  error?: ErrorRecord;
  /** While retrying: when the next attempt may start (ms since the epoch). */
  retryAt?: number;
  /** The last progress reported. */
  progress?: { fraction: number; note: string };
}

/** The persisted state of one run. */
export interface RunRecord {
  /** Layout version, {@linkcode RECORD_SCHEMA}. */
  schema: number;
  /** The workflow key. */
  key: string;
  /** The definition the run belongs to. */
  definition: {
    name: string;
    version: number;
    fingerprint: string;
  };
  /** Where the run stands. */
  status: RunStatus;
  /** One record per task, in definition order. */
  tasks: TaskRecord[];
  /** Encoded outputs of completed tasks, by task name. */
  outputs: Record<string, Uint8Array>;
  /** Encoded server-private data, by name: never sent to the remote. */
  local: Record<string, Uint8Array>;
  /** Why the run failed or was cancelled. */
  error?: ErrorRecord & { task?: string };
  /**
   * The server serving the run, and until when (ms since the epoch): another server sharing
   * the store does not take the run over before then. Renewed by every write.
   */
  lease?: { holder: string; until: number };
  /** The principal that started the run, when authentication is on. */
  principal?: string;
  /** When the run was created (ms since the epoch). */
  createdAt: number;
  /** When the record last changed (ms since the epoch). */
  updatedAt: number;
  /** Bumped by every write; a write based on an older version is refused. */
  version: number;
}

/** Something that happened to a run, as the monitoring API reports it. */
export type WorkflowEvent =
  & {
    /** When it happened (ms since the epoch). */
    at: number;
    /** The run's workflow key. */
    key: string;
  }
  & (
    | { type: "run.started"; definition: string }
    | { type: "run.completed" }
    | { type: "run.failed"; error: ErrorRecord & { task?: string } }
    | { type: "run.cancelled"; reason: string }
    | { type: "remote.attached"; peer: string }
    | { type: "remote.detached"; peer: string; reason: string }
    | { type: "task.started"; task: string; side: Side; attempt: number }
    | { type: "task.completed"; task: string; side: Side; attempt: number; durationMs: number }
    | { type: "task.skipped"; task: string; side: Side; attempt: number }
    | {
      type: "task.failed" | "task.retrying";
      task: string;
      side: Side;
      attempt: number;
      error: ErrorRecord;
    }
    | { type: "task.progress"; task: string; attempt: number; fraction: number; note: string }
    | { type: "message"; topic: string; from: Side; task: string; attempt: number }
  );

/** A short view of a run for listings. */
export interface RunSummary {
  /** The workflow key. */
  key: string;
  /** The definition's name. */
  definition: string;
  /** Where the run stands. */
  status: RunStatus;
  /** Tasks completed or skipped. */
  done: number;
  /** Tasks in all. */
  total: number;
  /** When the run was created. */
  createdAt: number;
  /** When the record last changed. */
  updatedAt: number;
}

/**
 * Records a run as cancelled: its unfinished attempts and the run itself, with `message` as
 * the reason. The caller bumps the version and saves.
 *
 * @returns The first task that was in flight, if one was.
 */
export function markCancelled(record: RunRecord, message: string, now: number): string | undefined {
  const error = { code: "Cancelled", message };
  let inFlight: string | undefined;
  for (const task of record.tasks) {
    if (task.status === "running" || task.status === "retrying") {
      Object.assign(task, { status: "cancelled", finishedAt: now, error });
      inFlight ??= task.name;
    }
  }
  record.status = "cancelled";
  record.error = { ...error, ...(inFlight ? { task: inFlight } : {}) };
  return inFlight;
}

/** The summary of a record. */
export function summarize(record: RunRecord): RunSummary {
  return {
    key: record.key,
    definition: record.definition.name,
    status: record.status,
    done: record.tasks.filter((t) => t.status === "completed" || t.status === "skipped").length,
    total: record.tasks.length,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
  };
}
