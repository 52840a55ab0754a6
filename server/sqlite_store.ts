/**
 * The embedded run store: one SQLite file, through `node:sqlite` (built into Deno, no flag).
 *
 * @module
 */
import type { DatabaseSync, SQLInputValue, StatementSync } from "node:sqlite";
import { setImmediate } from "node:timers";
import { type Durability, openDatabase } from "../workflow/_sqlite.ts";
import { checkLimit, decodeRecord, encodeRecord, prefixEnd } from "./_record_codec.ts";
import { conflict, type ListOptions, type RunStore } from "./store.ts";
import { type RunRecord, type RunStatus, type RunSummary, summarize } from "../workflow/state.ts";

export type { Durability } from "../workflow/_sqlite.ts";

/**
 * Options of {@linkcode SQLiteStore}.
 *
 * @example A fast store that survives a crash of the process, not a power cut
 * ```ts
 * import { SQLiteStore, type SQLiteStoreOptions } from "@tradeline/workflow/server";
 *
 * const options: SQLiteStoreOptions = { path: ":memory:", durability: "normal" };
 * await using store = new SQLiteStore(options);
 * ```
 */
export interface SQLiteStoreOptions {
  /**
   * The database file: a path (relative to the working folder), a `file:` URL, or
   * `":memory:"` for a private in-memory database. Missing folders are created. Several
   * processes, or several stores in one process, may share one file.
   *
   * @default {".workflow/runs.db"}
   */
  path?: string | URL;
  /**
   * How hard a commit works to survive a crash:
   *
   * - `"full"`: every save is flushed to the disk before it returns (`synchronous=FULL`), so
   *   a saved run survives a power cut or an operating-system crash.
   * - `"normal"`: a saved run survives a crash or `SIGKILL` of the process, but the last
   *   saves before a power cut may be lost (`synchronous=NORMAL`). Several times faster.
   *
   * @default {"full"}
   */
  durability?: Durability;
  /**
   * How long, in milliseconds, a write waits for another process's write to finish before
   * failing with "database is locked".
   *
   * @default {5000}
   */
  busyTimeout?: number;
}

/** The default file of {@linkcode SQLiteStore}, relative to the working folder. */
const DEFAULT_RUNS_PATH = ".workflow/runs.db";

const TABLES = `
CREATE TABLE IF NOT EXISTS runs (
  key TEXT PRIMARY KEY NOT NULL,
  definition TEXT NOT NULL,
  status TEXT NOT NULL,
  version INTEGER NOT NULL,
  schema INTEGER NOT NULL,
  done INTEGER NOT NULL,
  total INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs (status, key);
CREATE INDEX IF NOT EXISTS runs_by_definition ON runs (definition, key);
`;

const COLUMNS = "definition, status, version, schema, done, total, created_at, updated_at, record";
const SUMMARY = "key, definition, status, done, total, created_at, updated_at";

/** A save waiting for its group commit. */
interface PendingSave {
  key: string;
  version: number;
  values: SQLInputValue[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

interface SummaryRow {
  key: string;
  definition: string;
  status: string;
  done: number;
  total: number;
  created_at: number;
  updated_at: number;
}

/**
 * A run store in a SQLite file, in WAL mode: the default store of `serve()`.
 *
 * Each run is one row: its whole record as an exact blob, beside indexed columns for listing
 * (`status`, `definition`) and the `version` that every save compares and sets. A record may
 * be as large as SQLite allows (1 GB). Opening needs `--allow-read` and `--allow-write` for
 * the file's folder.
 *
 * @example Opening a store and listing its running runs
 * ```ts
 * import { SQLiteStore } from "@tradeline/workflow/server";
 *
 * const folder = await Deno.makeTempDir();
 * await using store = new SQLiteStore({ path: `${folder}/runs.db`, durability: "normal" });
 * console.log(await store.list({ status: "running" })); // []
 * ```
 */
export class SQLiteStore implements RunStore {
  /** The absolute path of the file, or `":memory:"`. */
  readonly path: string;
  #db: DatabaseSync | undefined;
  readonly #insert: StatementSync;
  readonly #update: StatementSync;
  readonly #load: StatementSync;
  readonly #version: StatementSync;
  readonly #lists = new Map<string, StatementSync>();
  /** Saves waiting for the next group commit. */
  #pending: PendingSave[] = [];

  /**
   * Opens the file, creating it, its folder and its tables when needed.
   *
   * @param options Where the file is and how durable a save is.
   * @throws {Error} Naming the file, when it cannot be created or opened, or was written by a
   * newer release.
   */
  constructor(options: SQLiteStoreOptions = {}) {
    const { db, path } = openDatabase({
      path: options.path ?? DEFAULT_RUNS_PATH,
      durability: options.durability,
      busyTimeout: options.busyTimeout,
      schema: TABLES,
      what: "run store",
    });
    this.#db = db;
    this.path = path;
    this.#insert = db.prepare(
      `INSERT INTO runs (key, ${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (key) DO NOTHING`,
    );
    this.#update = db.prepare(
      `UPDATE runs SET definition = ?, status = ?, version = ?, schema = ?, done = ?, total = ?,
       created_at = ?, updated_at = ?, record = ? WHERE key = ? AND version = ?`,
    );
    this.#load = db.prepare("SELECT schema, record FROM runs WHERE key = ?");
    this.#version = db.prepare("SELECT version FROM runs WHERE key = ?");
  }

  /**
   * Loads one run, migrating a record of an older schema.
   *
   * @throws {WorkflowError} `Internal` when the run was saved by a newer release.
   */
  load(key: string): Promise<RunRecord | undefined> {
    try {
      this.#flush();
      this.#open();
      const row = this.#load.get(key) as { schema: number; record: Uint8Array } | undefined;
      if (row === undefined) return Promise.resolve(undefined);
      return Promise.resolve(
        decodeRecord(row.record, { key, schema: row.schema, where: `"${this.path}"` }),
      );
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Saves `record` if the stored version is `record.version - 1`, or if there is no stored
   * run and `record.version` is 1.
   *
   * The record is encoded at once (later changes to the object are not saved); the write is
   * committed with the other saves made in the same turn of the event loop, in one
   * transaction (group commit: one flush to the disk for many runs), and the promise resolves
   * once that transaction is committed.
   *
   * @throws {WorkflowError} `Conflict` when the stored version differs; nothing is written.
   */
  save(record: RunRecord): Promise<void> {
    try {
      this.#open();
      const summary = summarize(record);
      const values: SQLInputValue[] = [
        summary.definition,
        summary.status,
        record.version,
        record.schema,
        summary.done,
        summary.total,
        summary.createdAt,
        summary.updatedAt,
        encodeRecord(record),
      ];
      return new Promise((resolve, reject) => {
        this.#pending.push({ key: record.key, version: record.version, values, resolve, reject });
        if (this.#pending.length === 1) setImmediate(this.#flushLater);
      });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  readonly #flushLater = () => this.#flush();

  /** Commits the pending saves: alone, or together in one transaction. */
  #flush(): void {
    const batch = this.#pending;
    if (batch.length === 0) return;
    this.#pending = [];
    let db: DatabaseSync;
    try {
      db = this.#open();
    } catch (error) {
      for (const save of batch) save.reject(error);
      return;
    }
    const grouped = batch.length > 1;
    const outcomes: (unknown | undefined)[] = [];
    try {
      if (grouped) db.exec("BEGIN IMMEDIATE");
      for (const { key, version, values } of batch) {
        const { changes } = version === 1
          ? this.#insert.run(key, ...values)
          : this.#update.run(...values, key, version - 1);
        if (changes === 0) {
          const found = this.#version.get(key) as { version: number } | undefined;
          outcomes.push(conflict(key, version - 1, found?.version));
        } else outcomes.push(undefined);
      }
      if (grouped) db.exec("COMMIT");
    } catch (error) {
      if (grouped && db.isTransaction) {
        try {
          db.exec("ROLLBACK");
        } catch { /* the transaction is already gone */ }
      }
      for (const save of batch) save.reject(error);
      return;
    }
    batch.forEach((save, i) =>
      outcomes[i] === undefined ? save.resolve() : save.reject(outcomes[i])
    );
  }

  /** Lists runs, ordered by key (in code point order). */
  list(options: ListOptions = {}): Promise<RunSummary[]> {
    try {
      this.#flush();
      this.#open();
      const limit = checkLimit(options.limit);
      if (limit === 0) return Promise.resolve([]);
      const where: string[] = [];
      const params: SQLInputValue[] = [];
      const add = (clause: string, ...values: SQLInputValue[]) => {
        where.push(clause);
        params.push(...values);
      };
      if (options.status) add("status = ?", options.status);
      if (options.definition) add("definition = ?", options.definition);
      if (options.keyPrefix) {
        const end = prefixEnd(options.keyPrefix);
        add("key >= ?", options.keyPrefix);
        if (end === undefined) {
          add("substr(key, 1, ?) = ?", [...options.keyPrefix].length, options.keyPrefix);
        } else add("key < ?", end);
      }
      if (options.after !== undefined) add("key > ?", options.after);
      const sql = `SELECT ${SUMMARY} FROM runs${
        where.length ? ` WHERE ${where.join(" AND ")}` : ""
      } ORDER BY key LIMIT ?`;
      const rows = this.#list(sql).all(...params, limit) as unknown as SummaryRow[];
      return Promise.resolve(rows.map(toSummary));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Closes the file. Closing twice does nothing; any other use after closing throws. */
  close(): Promise<void> {
    this.#flush();
    const db = this.#db;
    this.#db = undefined;
    this.#lists.clear();
    db?.close();
    return Promise.resolve();
  }

  /** Same as {@linkcode SQLiteStore.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #open(): DatabaseSync {
    if (this.#db === undefined) throw new Error(`The run store "${this.path}" is closed`);
    return this.#db;
  }

  #list(sql: string): StatementSync {
    let statement = this.#lists.get(sql);
    if (statement === undefined) {
      statement = this.#open().prepare(sql);
      this.#lists.set(sql, statement);
    }
    return statement;
  }
}

function toSummary(row: SummaryRow): RunSummary {
  return {
    key: row.key,
    definition: row.definition,
    status: row.status as RunStatus,
    done: row.done,
    total: row.total,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
