/**
 * The store interface every run store implements, and the in-memory store.
 *
 * @module
 */
import { ErrorCode, WorkflowError } from "../workflow/errors.ts";
import { type RunRecord, type RunStatus, type RunSummary, summarize } from "../workflow/state.ts";

/** Filters of {@linkcode RunStore.list}. */
export interface ListOptions {
  /** Only runs with this status. */
  status?: RunStatus;
  /** Only runs of this definition. */
  definition?: string;
  /** Only runs whose key starts with this. */
  keyPrefix?: string;
  /** Only runs whose key sorts after this one (paging). */
  after?: string;
  /** At most this many runs.
   *
   * @default {100} */
  limit?: number;
}

/**
 * Where runs are persisted. Every write is a compare-and-set on the record's `version`: a
 * write based on a stale version fails with a `Conflict` error and changes nothing.
 */
export interface RunStore extends AsyncDisposable {
  /** Loads one run, or `undefined` when there is none. */
  load(key: string): Promise<RunRecord | undefined>;
  /**
   * Writes `record` if the stored version is `record.version - 1` (or, for
   * `record.version === 1`, if there is no record yet).
   *
   * @throws {WorkflowError} `Conflict` when the stored version differs.
   */
  save(record: RunRecord): Promise<void>;
  /** Lists runs, ordered by key. */
  list(options?: ListOptions): Promise<RunSummary[]>;
  /** Releases the store's resources. */
  close(): Promise<void>;
}

/** The error for a lost compare-and-set. */
export function conflict(key: string, expected: number, found: number | undefined): WorkflowError {
  return new WorkflowError(
    ErrorCode.Conflict,
    `Cannot save run "${key}": expected stored version ${expected}, found ${
      found ?? "none"
    } (another writer changed it)`,
    { key },
  );
}

/** Applies {@linkcode ListOptions} to summaries already sorted by key. */
export function filterRuns(runs: Iterable<RunSummary>, options: ListOptions): RunSummary[] {
  const limit = options.limit ?? 100;
  const result: RunSummary[] = [];
  if (limit <= 0) return result;
  for (const run of runs) {
    if (options.status && run.status !== options.status) continue;
    if (options.definition && run.definition !== options.definition) continue;
    if (options.keyPrefix && !run.key.startsWith(options.keyPrefix)) continue;
    if (options.after !== undefined && run.key <= options.after) continue;
    result.push(run);
    if (result.length >= limit) break;
  }
  return result;
}

/**
 * A store that keeps runs in memory: for tests, and for users who want no persistence.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "@tradeline/workflow/server";
 *
 * await using store = new MemoryStore();
 * console.log(await store.list()); // []
 * ```
 */
export class MemoryStore implements RunStore {
  readonly #runs = new Map<string, RunRecord>();

  /** Loads a copy of one run. */
  load(key: string): Promise<RunRecord | undefined> {
    const record = this.#runs.get(key);
    return Promise.resolve(record ? copy(record) : undefined);
  }

  /** Saves a copy of the run, if its version follows the stored one. */
  save(record: RunRecord): Promise<void> {
    const stored = this.#runs.get(record.key);
    if ((stored?.version ?? 0) !== record.version - 1) {
      return Promise.reject(conflict(record.key, record.version - 1, stored?.version));
    }
    this.#runs.set(record.key, snapshot(record, stored));
    return Promise.resolve();
  }

  /** Lists runs, ordered by key. */
  list(options: ListOptions = {}): Promise<RunSummary[]> {
    const keys = [...this.#runs.keys()].sort();
    return Promise.resolve(filterRuns(keys.map((k) => summarize(this.#runs.get(k)!)), options));
  }

  /** Forgets every run. */
  close(): Promise<void> {
    this.#runs.clear();
    return Promise.resolve();
  }

  /** Same as {@linkcode MemoryStore.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * The memory store's own copy of a record, made for its known shape (the generic deep copy
 * below was most of the cost of a step): nested objects are spread, and an output or local
 * value whose bytes did not change since the previous save keeps its previous copy.
 */
function snapshot(record: RunRecord, previous: RunRecord | undefined): RunRecord {
  return {
    ...record,
    definition: { ...record.definition },
    tasks: record.tasks.map((task) => ({
      ...task,
      ...(task.error ? { error: { ...task.error } } : {}),
      ...(task.progress ? { progress: { ...task.progress } } : {}),
    })),
    outputs: bytesMap(record.outputs, previous?.outputs),
    local: bytesMap(record.local, previous?.local),
    ...(record.error ? { error: { ...record.error } } : {}),
  };
}

function bytesMap(
  map: Record<string, Uint8Array>,
  previous: Record<string, Uint8Array> | undefined,
): Record<string, Uint8Array> {
  const result: Record<string, Uint8Array> = {};
  for (const key in map) {
    if (!Object.hasOwn(map, key)) continue;
    const value = map[key];
    const before = previous !== undefined && Object.hasOwn(previous, key)
      ? previous[key]
      : undefined;
    setOwn(
      result,
      key,
      before !== undefined && sameBytes(before, value) ? before : new Uint8Array(value),
    );
  }
  return result;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A deep copy of a record: plain objects, arrays, `Uint8Array`s and `Date`s are copied by
 * hand (several times faster than `structuredClone`, which the memory store paid on every
 * save); anything else falls back to `structuredClone`.
 */
function copy<T>(value: T): T {
  if (typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) return value.map(copy) as T;
  if (value instanceof Uint8Array) return new Uint8Array(value) as T;
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) {
    return value instanceof Date ? new Date(value.getTime()) as T : structuredClone(value);
  }
  const result: Record<string, unknown> = {};
  for (const key of Object.keys(value)) {
    setOwn(result, key, copy((value as Record<string, unknown>)[key]));
  }
  return result as T;
}

/** Sets an own field, so that a `"__proto__"` key stays a key and never sets a prototype. */
function setOwn(object: Record<string, unknown>, key: string, value: unknown): void {
  if (key === "__proto__") {
    Object.defineProperty(object, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else object[key] = value;
}
