/**
 * Opening a SQLite file the way every embedded store of this package does: the folder is
 * created, WAL mode, a busy timeout so that several processes can share the file, the chosen
 * durability, and a table layout version in `PRAGMA user_version`.
 *
 * Private to the package: the run store (`server/sqlite_store.ts`) and the remote's local
 * store (`client/local_store.ts`) both use it, and one file may hold both of their tables.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/**
 * How hard a SQLite store works to keep a commit.
 *
 * - `"full"` (`PRAGMA synchronous = FULL`): every commit is flushed to the disk before it
 *   returns, so it survives a power cut or an operating-system crash.
 * - `"normal"` (`PRAGMA synchronous = NORMAL`): a commit survives a crash or kill of the
 *   process, but the last commits before a power cut may be lost. Several times faster.
 *
 * @example
 * ```ts
 * import { SQLiteStore } from "@tradeline/workflow/server";
 *
 * await using store = new SQLiteStore({ path: ":memory:", durability: "normal" });
 * ```
 */
export type Durability = "full" | "normal";

/**
 * The table layout of the files this package writes, kept in `PRAGMA user_version`. Bump it
 * (and add a step to {@linkcode openDatabase}'s upgrade) when a table changes.
 */
export const SQLITE_LAYOUT = 1;

/** How long a statement waits for another connection's write lock, by default. */
export const DEFAULT_BUSY_TIMEOUT_MS = 5_000;

/** What {@linkcode openDatabase} needs. */
export interface OpenOptions {
  /** A file path or `file:` URL, or `":memory:"`. */
  path: string | URL;
  /** The durability level. */
  durability: Durability | undefined;
  /** Milliseconds to wait for a lock. */
  busyTimeout: number | undefined;
  /** The statements that create this store's tables and indexes (`IF NOT EXISTS`). */
  schema: string;
  /** How to name the store in errors, for example `run store`. */
  what: string;
}

/** An open database and the path it was opened at, for error messages. */
export interface OpenDatabase {
  /** The connection. */
  db: DatabaseSync;
  /** The absolute path of the file, or `":memory:"`. */
  path: string;
}

/**
 * Opens (creating when needed) a SQLite file and its tables.
 *
 * @throws {RangeError} For an unknown durability or a bad busy timeout.
 * @throws {Error} Naming the file, when it cannot be created, opened or read.
 */
export function openDatabase(options: OpenOptions): OpenDatabase {
  const durability = options.durability ?? "full";
  if (durability !== "full" && durability !== "normal") {
    throw new RangeError(
      `Cannot open the ${options.what}: durability must be "full" or "normal", not "${
        String(durability)
      }"`,
    );
  }
  const busyTimeout = options.busyTimeout ?? DEFAULT_BUSY_TIMEOUT_MS;
  if (!Number.isInteger(busyTimeout) || busyTimeout < 0) {
    throw new RangeError(
      `Cannot open the ${options.what}: busyTimeout must be a whole number of milliseconds, not ${busyTimeout}`,
    );
  }
  const path = toPath(options.path);
  if (path !== ":memory:") makeFolder(path, options.what);
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, { timeout: busyTimeout });
  } catch (error) {
    throw cannotOpen(options.what, path, error);
  }
  let failure: Error | undefined;
  try {
    db.exec(`PRAGMA busy_timeout = ${busyTimeout}`);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec(`PRAGMA synchronous = ${durability === "full" ? "FULL" : "NORMAL"}`);
    failure = upgrade(db, options, path);
  } catch (error) {
    failure = cannotOpen(options.what, path, error);
  }
  if (failure) {
    db.close();
    throw failure;
  }
  return { db, path };
}

function toPath(path: string | URL): string {
  if (path instanceof URL) return fileURLToPath(path);
  if (typeof path !== "string" || path === "") {
    throw new TypeError(`The store path must be a non-empty string or a file URL`);
  }
  return path === ":memory:" ? path : resolve(path);
}

function makeFolder(path: string, what: string): void {
  const folder = dirname(path);
  try {
    Deno.mkdirSync(folder, { recursive: true });
  } catch (error) {
    throw new Error(
      `Cannot open the ${what} "${path}": cannot create the folder "${folder}": ${
        (error as Error).message
      }`,
      { cause: error },
    );
  }
}

function cannotOpen(what: string, path: string, error: unknown): Error {
  return new Error(
    `Cannot open the ${what} "${path}": ${
      (error as Error).message
    } (is it a SQLite database, and can this process read and write it and its folder?)`,
    { cause: error },
  );
}

/**
 * Creates the tables and brings the file's layout up to {@linkcode SQLITE_LAYOUT}; returns the
 * error for a file of a newer layout, which it leaves untouched.
 */
function upgrade(db: DatabaseSync, options: OpenOptions, path: string): Error | undefined {
  // IMMEDIATE takes the write lock now, so that two processes opening a new file at once
  // wait for each other (busy_timeout) instead of racing.
  db.exec("BEGIN IMMEDIATE");
  try {
    const row = db.prepare("PRAGMA user_version").get() as { user_version: number };
    const layout = row.user_version;
    if (layout > SQLITE_LAYOUT) {
      db.exec("ROLLBACK");
      return new Error(
        `Cannot open the ${options.what} "${path}": it was written by a newer release of ` +
          `@tradeline/workflow (table layout ${layout}; this release reads up to ` +
          `${SQLITE_LAYOUT}). Upgrade @tradeline/workflow to use it`,
      );
    }
    db.exec(options.schema);
    // Later layouts: `if (layout < 2) { ...ALTER TABLE... }` goes here, for every table.
    if (layout < SQLITE_LAYOUT) db.exec(`PRAGMA user_version = ${SQLITE_LAYOUT}`);
    db.exec("COMMIT");
    return undefined;
  } catch (error) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw error;
  }
}
