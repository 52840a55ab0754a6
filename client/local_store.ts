/**
 * The remote's private data store: values a remote task keeps for itself (a Diffie-Hellman
 * exponent, a temporary credential) that must survive a restart of the remote without ever
 * reaching the server.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { type Durability, openDatabase } from "../workflow/_sqlite.ts";

/**
 * Where a remote keeps its private data, by run and name.
 *
 * @example A store of your own
 * ```ts
 * import type { LocalStore } from "@tradeline/workflow/client";
 *
 * class MapStore implements LocalStore {
 *   #data = new Map<string, Uint8Array>();
 *   get(runKey: string, name: string): Promise<Uint8Array | undefined> {
 *     return Promise.resolve(this.#data.get(JSON.stringify([runKey, name])));
 *   }
 *   set(runKey: string, name: string, value: Uint8Array): Promise<void> {
 *     this.#data.set(JSON.stringify([runKey, name]), value.slice());
 *     return Promise.resolve();
 *   }
 *   clear(runKey: string): Promise<void> {
 *     for (const key of this.#data.keys()) {
 *       if (JSON.parse(key)[0] === runKey) this.#data.delete(key);
 *     }
 *     return Promise.resolve();
 *   }
 *   close(): Promise<void> {
 *     return Promise.resolve();
 *   }
 * }
 * ```
 */
export interface LocalStore {
  /** The value stored under `name` for the run, or `undefined`. */
  get(runKey: string, name: string): Promise<Uint8Array | undefined>;
  /** Stores `value` under `name` for the run, replacing any previous value. */
  set(runKey: string, name: string, value: Uint8Array): Promise<void>;
  /** Forgets every value of the run. */
  clear(runKey: string): Promise<void>;
  /** Releases the store's resources. */
  close(): Promise<void>;
}

/**
 * A local store in memory: for tests, and for remotes whose private data need not survive a
 * restart.
 *
 * @example
 * ```ts
 * import { MemoryLocalStore } from "@tradeline/workflow/client";
 *
 * await using local = new MemoryLocalStore();
 * await local.set("dh-secret/alice", "x", new Uint8Array([42]));
 * console.log(await local.get("dh-secret/alice", "x")); // Uint8Array(1) [ 42 ]
 * ```
 */
export class MemoryLocalStore implements LocalStore, AsyncDisposable {
  readonly #runs = new Map<string, Map<string, Uint8Array>>();

  /** A copy of the value stored under `name` for the run, or `undefined`. */
  get(runKey: string, name: string): Promise<Uint8Array | undefined> {
    return Promise.resolve(this.#runs.get(runKey)?.get(name)?.slice());
  }

  /** Stores a copy of `value` under `name` for the run. */
  set(runKey: string, name: string, value: Uint8Array): Promise<void> {
    try {
      checkValue(runKey, name, value);
    } catch (error) {
      return Promise.reject(error);
    }
    let run = this.#runs.get(runKey);
    if (run === undefined) this.#runs.set(runKey, run = new Map());
    run.set(name, value.slice());
    return Promise.resolve();
  }

  /** Forgets every value of the run. */
  clear(runKey: string): Promise<void> {
    this.#runs.delete(runKey);
    return Promise.resolve();
  }

  /** Forgets everything. */
  close(): Promise<void> {
    this.#runs.clear();
    return Promise.resolve();
  }

  /** Same as {@linkcode MemoryLocalStore.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Options of {@linkcode SQLiteLocalStore}.
 *
 * @example
 * ```ts
 * import { SQLiteLocalStore, type SQLiteLocalStoreOptions } from "@tradeline/workflow/client";
 *
 * const options: SQLiteLocalStoreOptions = { path: ":memory:", durability: "normal" };
 * await using local = new SQLiteLocalStore(options);
 * ```
 */
export interface SQLiteLocalStoreOptions {
  /**
   * The database file: a path (relative to the working folder), a `file:` URL, or
   * `":memory:"`. Missing folders are created. It may be the same file as a run store's.
   *
   * @default {".workflow/remote.db"}
   */
  path?: string | URL;
  /**
   * How hard a write works to survive a crash: `"full"` survives a power cut;
   * `"normal"` survives a crash or `SIGKILL` of the process, and is several times faster.
   *
   * @default {"full"}
   */
  durability?: Durability;
  /**
   * How long, in milliseconds, a write waits for another process's write to finish.
   *
   * @default {5000}
   */
  busyTimeout?: number;
}

const TABLES = `
CREATE TABLE IF NOT EXISTS remote_data (
  run_key TEXT NOT NULL,
  name TEXT NOT NULL,
  value BLOB NOT NULL,
  PRIMARY KEY (run_key, name)
);
`;

/**
 * A local store in a SQLite file on the remote's machine, in WAL mode: the default of
 * `connect()`. A value is on disk when `set()` resolves, so it survives a `SIGKILL` of the
 * remote (and, with `durability: "full"`, a power cut). Opening needs `--allow-read` and
 * `--allow-write` for the file's folder.
 *
 * @example
 * ```ts
 * import { SQLiteLocalStore } from "@tradeline/workflow/client";
 *
 * const folder = await Deno.makeTempDir();
 * await using local = new SQLiteLocalStore({ path: `${folder}/remote.db` });
 * await local.set("dh-secret/alice", "x", new Uint8Array([42]));
 * console.log(await local.get("dh-secret/alice", "x")); // Uint8Array(1) [ 42 ]
 * ```
 */
export class SQLiteLocalStore implements LocalStore, AsyncDisposable {
  /** The absolute path of the file, or `":memory:"`. */
  readonly path: string;
  #db: DatabaseSync | undefined;
  readonly #get: StatementSync;
  readonly #set: StatementSync;
  readonly #clear: StatementSync;

  /**
   * Opens the file, creating it, its folder and its table when needed.
   *
   * @param options Where the file is and how durable a write is.
   * @throws {Error} Naming the file, when it cannot be created or opened.
   */
  constructor(options: SQLiteLocalStoreOptions = {}) {
    const { db, path } = openDatabase({
      path: options.path ?? ".workflow/remote.db",
      durability: options.durability,
      busyTimeout: options.busyTimeout,
      schema: TABLES,
      what: "local store",
    });
    this.#db = db;
    this.path = path;
    this.#get = db.prepare("SELECT value FROM remote_data WHERE run_key = ? AND name = ?");
    this.#set = db.prepare(
      `INSERT INTO remote_data (run_key, name, value) VALUES (?, ?, ?)
       ON CONFLICT (run_key, name) DO UPDATE SET value = excluded.value`,
    );
    this.#clear = db.prepare("DELETE FROM remote_data WHERE run_key = ?");
  }

  /** The value stored under `name` for the run, or `undefined`. */
  get(runKey: string, name: string): Promise<Uint8Array | undefined> {
    try {
      this.#open();
      const row = this.#get.get(runKey, name) as { value: Uint8Array } | undefined;
      return Promise.resolve(row?.value);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Stores `value` under `name` for the run; it is on disk when this resolves. */
  set(runKey: string, name: string, value: Uint8Array): Promise<void> {
    try {
      checkValue(runKey, name, value);
      this.#open();
      this.#set.run(runKey, name, value);
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Forgets every value of the run. */
  clear(runKey: string): Promise<void> {
    try {
      this.#open();
      this.#clear.run(runKey);
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Closes the file. Closing twice does nothing; any other use after closing throws. */
  close(): Promise<void> {
    const db = this.#db;
    this.#db = undefined;
    db?.close();
    return Promise.resolve();
  }

  /** Same as {@linkcode SQLiteLocalStore.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #open(): void {
    if (this.#db === undefined) throw new Error(`The local store "${this.path}" is closed`);
  }
}

function checkValue(runKey: string, name: string, value: Uint8Array): void {
  if (typeof runKey !== "string" || typeof name !== "string") {
    throw new TypeError("Cannot store local data: the run key and the name must be strings");
  }
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(
      `Cannot store local data "${name}" of run "${runKey}": the value must be a Uint8Array`,
    );
  }
}
