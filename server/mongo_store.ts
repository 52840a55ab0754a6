/**
 * The shared run store: MongoDB, through the official driver (`npm:mongodb`), so that several
 * server processes can share their runs.
 *
 * Import it from its own subpath, `@tradeline/workflow/mongo`: the rest of the package never
 * loads the driver.
 *
 * @example
 * ```ts ignore
 * import { serve } from "@tradeline/workflow/server";
 * import { MongoStore } from "@tradeline/workflow/mongo";
 * import { tasks } from "./server_tasks.ts";
 *
 * const store = await MongoStore.connect(Deno.env.get("MONGODB_URL")!);
 * await using server = await serve({ workflows: tasks, store });
 * ```
 *
 * @module
 */
import {
  Binary,
  type Collection,
  type Filter,
  MongoClient,
  type MongoClientOptions,
  MongoServerError,
} from "mongodb";
import { ErrorCode, WorkflowError } from "../workflow/errors.ts";
import { type RunRecord, type RunStatus, type RunSummary, summarize } from "../workflow/state.ts";
import { checkLimit, decodeRecord, encodeRecord, prefixEnd } from "./_record_codec.ts";
import { conflict, type ListOptions, type RunStore } from "./store.ts";

/**
 * One run as MongoDB holds it: the exact record as a blob, beside the fields that are
 * indexed, listed and compared.
 *
 * @example Reading the running runs with the driver directly
 * ```ts ignore
 * import { MongoClient } from "npm:mongodb";
 * import type { RunDocument } from "@tradeline/workflow/mongo";
 *
 * const client = await MongoClient.connect(Deno.env.get("MONGODB_URL")!);
 * const runs = client.db("workflow").collection<RunDocument>("runs");
 * console.log(await runs.find({ status: "running" }).project({ record: 0 }).toArray());
 * ```
 */
export interface RunDocument {
  /** The workflow key. */
  _id: string;
  /** The definition's name. */
  definition: string;
  /** The run's status. */
  status: RunStatus;
  /** The record's version, which every save compares and sets. */
  version: number;
  /** The record's schema. */
  schema: number;
  /** Tasks completed or skipped. */
  done: number;
  /** Tasks in all. */
  total: number;
  /** When the run was created. */
  createdAt: Date;
  /** When the record last changed. */
  updatedAt: Date;
  /** The whole record, encoded with the payload codec. */
  record: Binary;
}

/**
 * Options of {@linkcode MongoStore.connect}.
 *
 * @example
 * ```ts ignore
 * import { MongoStore, type MongoStoreOptions } from "@tradeline/workflow/mongo";
 *
 * const options: MongoStoreOptions = {
 *   database: "ops",
 *   collection: "workflow_runs",
 *   client: { appName: "billing-server" },
 * };
 * const store = await MongoStore.connect(Deno.env.get("MONGODB_URL")!, options);
 * ```
 */
export interface MongoStoreOptions {
  /**
   * The database.
   *
   * @default {"workflow"}
   */
  database?: string;
  /**
   * The collection.
   *
   * @default {"runs"}
   */
  collection?: string;
  /** Options for the driver's `MongoClient`, beside those in the URL. */
  client?: MongoClientOptions;
}

/**
 * MongoDB's largest document, less room for the fields beside the record.
 * https://www.mongodb.com/docs/manual/reference/limits/#mongodb-limit-BSON-Document-Size
 */
const MAX_RECORD_BYTES = 16 * 1024 * 1024 - 4 * 1024;

/**
 * A run store in a MongoDB collection: one document per run, `_id` the workflow key, indexed
 * by `status` and `definition`, with a `version` field that every save compares and sets, so
 * that servers sharing the collection never overwrite each other's writes.
 *
 * A save is as durable as the URL's write concern (the default, `w=majority`, on a replica
 * set). A run's record may be up to about 16 MiB, MongoDB's document limit.
 *
 * @example
 * ```ts ignore
 * import { MongoStore } from "@tradeline/workflow/mongo";
 *
 * await using store = await MongoStore.connect("mongodb://127.0.0.1:27017", {
 *   database: "workflow",
 *   collection: "runs",
 * });
 * console.log(await store.list({ status: "running" }));
 * ```
 */
export class MongoStore implements RunStore {
  readonly #client: MongoClient;
  readonly #runs: Collection<RunDocument>;
  readonly #where: string;
  #closed = false;

  private constructor(client: MongoClient, runs: Collection<RunDocument>) {
    this.#client = client;
    this.#runs = runs;
    this.#where = `MongoDB collection "${runs.dbName}.${runs.collectionName}"`;
  }

  /**
   * Connects to MongoDB and creates the collection's indexes when they are missing.
   *
   * @param url A MongoDB connection string, such as `mongodb://127.0.0.1:27017`.
   * @param options The database and collection, and driver options.
   * @returns A store that owns the connection: closing the store closes it.
   * @throws {Error} When the server cannot be reached or the indexes cannot be created.
   *
   * @example
   * ```ts ignore
   * import { MongoStore } from "@tradeline/workflow/mongo";
   *
   * const store = await MongoStore.connect(Deno.env.get("MONGODB_URL")!, { database: "ops" });
   * ```
   */
  static async connect(url: string, options: MongoStoreOptions = {}): Promise<MongoStore> {
    const database = options.database ?? "workflow";
    const collection = options.collection ?? "runs";
    let client: MongoClient;
    try {
      client = new MongoClient(url, options.client);
    } catch (error) {
      throw cannotConnect(url, error);
    }
    try {
      await client.connect();
      const runs = client.db(database).collection<RunDocument>(collection);
      await runs.createIndexes([
        { key: { status: 1, _id: 1 }, name: "status_key" },
        { key: { definition: 1, _id: 1 }, name: "definition_key" },
      ]);
      return new MongoStore(client, runs);
    } catch (error) {
      await client.close().catch(() => {});
      throw cannotConnect(url, error);
    }
  }

  /**
   * Loads one run, migrating a record of an older schema.
   *
   * @throws {WorkflowError} `Internal` when the run was saved by a newer release.
   */
  async load(key: string): Promise<RunRecord | undefined> {
    this.#open();
    const document = await this.#runs.findOne(
      { _id: key },
      { projection: { schema: 1, record: 1 } },
    );
    if (document === null) return undefined;
    // A driver set to `promoteBuffers` hands out a Buffer instead of a Binary.
    const raw: Binary | Uint8Array = document.record;
    return decodeRecord(raw instanceof Uint8Array ? raw : raw.value(), {
      key,
      schema: document.schema,
      where: this.#where,
    });
  }

  /**
   * Saves `record` if the stored version is `record.version - 1`, or if there is no stored
   * run and `record.version` is 1.
   *
   * @throws {WorkflowError} `Conflict` when the stored version differs; nothing is written.
   * @throws {WorkflowError} `ResourceExhausted` when the record is over MongoDB's 16 MiB.
   */
  async save(record: RunRecord): Promise<void> {
    this.#open();
    const bytes = encodeRecord(record);
    if (bytes.length > MAX_RECORD_BYTES) {
      throw new WorkflowError(
        ErrorCode.ResourceExhausted,
        `Cannot save run "${record.key}": its record is ${bytes.length} bytes, over the ` +
          `${MAX_RECORD_BYTES} bytes a MongoDB document can hold; keep large task outputs ` +
          `out of the run (store them elsewhere and pass a reference), or use the SQLite store`,
        { key: record.key },
      );
    }
    const summary = summarize(record);
    const fields = {
      definition: summary.definition,
      status: summary.status,
      version: record.version,
      schema: record.schema,
      done: summary.done,
      total: summary.total,
      createdAt: new Date(summary.createdAt),
      updatedAt: new Date(summary.updatedAt),
      record: new Binary(bytes),
    };
    if (record.version === 1) {
      try {
        await this.#runs.insertOne({ _id: record.key, ...fields });
        return;
      } catch (error) {
        if (!(error instanceof MongoServerError && error.code === 11000)) throw error;
      }
    } else {
      const result = await this.#runs.replaceOne(
        { _id: record.key, version: record.version - 1 },
        fields,
      );
      if (!result.acknowledged) {
        throw new Error(
          `Cannot save run "${record.key}" to ${this.#where}: the write concern must be ` +
            `acknowledged (not w=0) for the version check to work`,
        );
      }
      if (result.matchedCount === 1) return;
    }
    throw conflict(record.key, record.version - 1, await this.#storedVersion(record.key));
  }

  /** Lists runs, ordered by key (in code point order). */
  async list(options: ListOptions = {}): Promise<RunSummary[]> {
    this.#open();
    const limit = checkLimit(options.limit);
    if (limit === 0) return []; // for the driver, a limit of 0 means none
    const filter: Filter<RunDocument> = {};
    if (options.status) filter.status = options.status;
    if (options.definition) filter.definition = options.definition;
    const key: { $gt?: string; $gte?: string; $lt?: string; $regex?: RegExp } = {};
    if (options.keyPrefix) {
      const end = prefixEnd(options.keyPrefix);
      key.$gte = options.keyPrefix;
      if (end === undefined) key.$regex = new RegExp(`^${escapeRegExp(options.keyPrefix)}`);
      else key.$lt = end;
    }
    if (options.after !== undefined) key.$gt = options.after;
    if (Object.keys(key).length > 0) filter._id = key;
    const documents = await this.#runs
      .find(filter, { projection: { record: 0 } })
      .sort({ _id: 1 })
      .limit(limit)
      .toArray();
    return documents.map((document) => ({
      key: document._id,
      definition: document.definition,
      status: document.status,
      done: document.done,
      total: document.total,
      createdAt: document.createdAt.getTime(),
      updatedAt: document.updatedAt.getTime(),
    }));
  }

  /** Closes the connection. Closing twice does nothing; any other use after closing throws. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#client.close();
  }

  /** Same as {@linkcode MongoStore.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #open(): void {
    if (this.#closed) throw new Error(`The run store ${this.#where} is closed`);
  }

  async #storedVersion(key: string): Promise<number | undefined> {
    const document = await this.#runs.findOne({ _id: key }, { projection: { version: 1 } });
    return document?.version;
  }
}

function cannotConnect(url: string, error: unknown): Error {
  return new Error(
    `Cannot open the MongoDB run store at "${redact(url)}": ${(error as Error).message}`,
    { cause: error },
  );
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  return url.replace(/^([a-z+]+:\/\/)[^@/]*@/i, "$1***@");
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
