/**
 * Where the CLI reads runs: a store opened directly (SQLite or MongoDB), or a running
 * server's dashboard API.
 *
 * @module
 */
import { CliError, type SourceArgs, UsageError } from "./_args.ts";
import { pollEvents } from "./_poll.ts";
import { REQUEST_HEADER, type RunView, toRunView } from "../server/dashboard.ts";
import type { ListOptions, RunStore } from "../server/store.ts";
import {
  markCancelled,
  type RunStatus,
  type RunSummary,
  type WorkflowEvent,
} from "../workflow/state.ts";

/** A page of runs, as `GET /api/runs` and `list --json` give it. */
export interface RunPage {
  runs: RunSummary[];
  /** The `after` of the next page, when this one is full. */
  next: string | null;
}

/** What `cancel` did, as `cancel --json` prints it. */
export interface CancelResult {
  key: string;
  cancelled: boolean;
  status?: RunStatus;
  error?: string;
}

/** Options of {@linkcode Source.events}. */
export interface EventOptions {
  key?: string;
  filter?: Pick<ListOptions, "keyPrefix" | "definition">;
  /** Store polling interval, in ms. */
  interval: number;
  signal: AbortSignal;
  /** Called once the source is following: events from then on are not missed. */
  onReady?: () => void;
}

/** A source of runs. */
export interface Source {
  /** For messages: `the SQLite store "…"`, `the server at …`. */
  readonly name: string;
  list(options: ListOptions): Promise<RunPage>;
  run(key: string): Promise<RunView | undefined>;
  events(options: EventOptions): AsyncIterable<WorkflowEvent>;
  cancel(key: string, options: { reason: string; offline: boolean }): Promise<CancelResult>;
  close(): Promise<void>;
}

/**
 * Opens the source the command line names.
 *
 * @throws {CliError} When it cannot be opened or reached.
 */
export async function openSource(args: SourceArgs): Promise<Source> {
  switch (args.kind) {
    case "server":
      return new ServerSource(args.url);
    case "sqlite":
      return await openSQLite(args.path, args.explicit);
    case "mongodb":
      return await openMongo(args);
  }
}

async function openSQLite(path: string, explicit: boolean): Promise<Source> {
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) throw new CliError(`The store "${path}" is not a file`);
  } catch (error) {
    if (error instanceof CliError) throw error;
    if (error instanceof Deno.errors.NotFound) {
      throw new CliError(
        explicit
          ? `No run store at "${path}"`
          : `No run store at "${path}" (the server's default, relative to the folder it runs ` +
            `in): run this where the server runs, or pass --store PATH, --mongodb URL or ` +
            `--server URL`,
      );
    }
    throw new CliError(`Cannot open the store "${path}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  const { SQLiteStore } = await import("../server/sqlite_store.ts");
  try {
    const store = new SQLiteStore({ path });
    return new StoreSource(store, `the SQLite store "${store.path}"`);
  } catch (error) {
    throw new CliError(`Cannot open the store "${path}": ${(error as Error).message}`, {
      cause: error,
    });
  }
}

async function openMongo(
  args: { url: string; database?: string; collection?: string },
): Promise<Source> {
  const { MongoStore } = await import("../server/mongo_store.ts");
  try {
    const store = await MongoStore.connect(args.url, {
      database: args.database,
      collection: args.collection,
      client: { serverSelectionTimeoutMS: 5000 },
    });
    const where = `${args.database ?? "workflow"}.${args.collection ?? "runs"}`;
    return new StoreSource(store, `the MongoDB store ${where}`);
  } catch (error) {
    throw new CliError((error as Error).message, { cause: error });
  }
}

/** A store read directly. */
class StoreSource implements Source {
  readonly name: string;
  readonly #store: RunStore;

  constructor(store: RunStore, name: string) {
    this.#store = store;
    this.name = name;
  }

  async list(options: ListOptions): Promise<RunPage> {
    const limit = options.limit ?? 100;
    const runs = await this.#store.list({ ...options, limit });
    return { runs, next: runs.length === limit ? runs[runs.length - 1].key : null };
  }

  async run(key: string): Promise<RunView | undefined> {
    const record = await this.#store.load(key);
    return record && toRunView(record);
  }

  events(options: EventOptions): AsyncIterable<WorkflowEvent> {
    return pollEvents({ list: (o) => this.#store.list(o), run: (key) => this.run(key) }, options);
  }

  async cancel(
    key: string,
    options: { reason: string; offline: boolean },
  ): Promise<CancelResult> {
    if (!options.offline) {
      throw new UsageError(
        `Cannot cancel "${key}" through ${this.name}: a store alone cannot stop a task that a ` +
          `server is running. Pass --server URL (the server's dashboard) to cancel it there, ` +
          `or --offline to mark the run cancelled in the store when no server is running it`,
        "cancel",
      );
    }
    const record = await this.#store.load(key);
    if (!record) throw new CliError(`No run "${key}" in ${this.name}`);
    if (record.status !== "running") {
      return {
        key,
        cancelled: false,
        status: record.status,
        error: `Run "${key}" has already ended (${record.status})`,
      };
    }
    markCancelled(record, `Run "${key}" was cancelled: ${options.reason}`, Date.now());
    record.version++;
    record.updatedAt = Date.now();
    try {
      await this.#store.save(record);
    } catch (error) {
      throw new CliError(
        `Cannot mark "${key}" cancelled: ${(error as Error).message}. A server may be ` +
          `running it: cancel it with --server URL`,
        { cause: error },
      );
    }
    return { key, cancelled: true, status: "cancelled" };
  }

  close(): Promise<void> {
    return this.#store.close();
  }
}

/** A running server's dashboard API. */
class ServerSource implements Source {
  readonly name: string;
  readonly #base: string;

  constructor(base: string) {
    this.#base = base;
    this.name = `the server at ${base}`;
  }

  async #request(
    path: string,
    init: RequestInit = {},
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    let response: Response;
    try {
      response = await fetch(`${this.#base}${path}`, {
        ...init,
        headers: { accept: "application/json", ...init.headers },
      });
    } catch (error) {
      throw this.#unreachable(error);
    }
    const text = await response.text();
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(text);
    } catch {
      throw new CliError(
        `${this.name} answered ${response.status} without JSON: is it a workflow dashboard?`,
      );
    }
    return { status: response.status, body };
  }

  #unreachable(error: unknown): CliError {
    const cause = (error as Error).cause as Error | undefined;
    const why = cause?.message ? `${(error as Error).message}: ${cause.message}` : error;
    return new CliError(
      `Cannot reach ${this.name} (${why}). Is the server running, with serve({ dashboard })?`,
      { cause: error },
    );
  }

  #fail(status: number, body: Record<string, unknown>): CliError {
    return new CliError(`${this.name} answered ${status}: ${body.error ?? "no reason given"}`);
  }

  async list(options: ListOptions): Promise<RunPage> {
    const query = new URLSearchParams();
    if (options.status) query.set("status", options.status);
    if (options.definition) query.set("definition", options.definition);
    if (options.keyPrefix) query.set("prefix", options.keyPrefix);
    if (options.after !== undefined) query.set("after", options.after);
    query.set("limit", String(options.limit ?? 100));
    const { status, body } = await this.#request(`/api/runs?${query}`);
    if (status !== 200) throw this.#fail(status, body);
    return body as unknown as RunPage;
  }

  async run(key: string): Promise<RunView | undefined> {
    const { status, body } = await this.#request(`/api/runs/${encodeURIComponent(key)}`);
    if (status === 404) return undefined;
    if (status !== 200) throw this.#fail(status, body);
    return body as unknown as RunView;
  }

  async cancel(key: string, options: { reason: string }): Promise<CancelResult> {
    const { status, body } = await this.#request(
      `/api/runs/${encodeURIComponent(key)}/cancel`,
      {
        method: "POST",
        headers: { "content-type": "application/json", [REQUEST_HEADER]: "cli" },
        body: JSON.stringify({ reason: options.reason }),
      },
    );
    if (status === 404) throw new CliError(`No run "${key}" on ${this.name}`);
    if (status === 200 || status === 409) return body as unknown as CancelResult;
    throw this.#fail(status, body);
  }

  events(options: EventOptions): AsyncIterable<WorkflowEvent> {
    return this.#events(options);
  }

  async *#events(options: EventOptions): AsyncGenerator<WorkflowEvent> {
    const query = new URLSearchParams();
    if (options.key !== undefined) query.set("key", options.key);
    else if (options.filter?.keyPrefix) query.set("prefix", options.filter.keyPrefix);
    let response: Response;
    try {
      response = await fetch(`${this.#base}/api/events?${query}`, {
        headers: { accept: "text/event-stream" },
        signal: options.signal,
      });
    } catch (error) {
      if (options.signal.aborted) return;
      throw this.#unreachable(error);
    }
    if (!response.ok || !response.body) {
      const text = await response.text();
      throw new CliError(`${this.name} refused the event stream (${response.status}): ${text}`);
    }
    options.onReady?.();
    const definitions = new Map<string, string | undefined>();
    const wanted = options.filter?.definition;
    try {
      for await (const data of readServerSentEvents(response.body)) {
        let event: WorkflowEvent;
        try {
          event = JSON.parse(data);
        } catch {
          continue;
        }
        if (wanted !== undefined) {
          if (event.type === "run.started") definitions.set(event.key, event.definition);
          if (!definitions.has(event.key)) {
            definitions.set(event.key, (await this.run(event.key))?.definition.name);
          }
          if (definitions.get(event.key) !== wanted) continue;
        }
        yield event;
      }
    } catch (error) {
      if (options.signal.aborted) return;
      const message = (error as Error).message;
      throw new CliError(`Lost the event stream of ${this.name}: ${message}`, { cause: error });
    }
    if (!options.signal.aborted) {
      throw new CliError(`${this.name} closed the event stream (did it shut down?)`);
    }
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The `data` of each server-sent event in a stream. */
export async function* readServerSentEvents(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<string> {
  let buffer = "";
  let data: string[] = [];
  for await (const chunk of body.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let newline: number;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, buffer[newline - 1] === "\r" ? newline - 1 : newline);
      buffer = buffer.slice(newline + 1);
      if (line === "") {
        if (data.length > 0) yield data.join("\n");
        data = [];
      } else if (line.startsWith("data:")) {
        data.push(line.slice(line.startsWith("data: ") ? 6 : 5));
      }
    }
  }
}
