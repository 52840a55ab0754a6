/**
 * `serve()`: the workflow server.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import type { AnyWorkflow } from "../workflow/definition.ts";
import { type ConsolePrinter, type LineWriter, printerFor } from "../workflow/console.ts";
import type { RunRecord, RunSummary, WorkflowEvent } from "../workflow/state.ts";
import type { TaskSet } from "../workflow/task.ts";
import { ErrorCode, WorkflowError } from "../workflow/errors.ts";
import { Engine } from "./engine.ts";
import { EventHub, type SubscribeOptions } from "./events.ts";
import { SERVICE } from "./grpc.ts";
import type { Authenticator } from "./auth.ts";
import { serverCredentials, type ServerTlsOptions } from "./credentials.ts";
import { guardedHandler } from "./guard.ts";
import { checkRunQuota, grpcServerOptions, resolveLimits, type ServerLimits } from "./limits.ts";
import { isLoopback } from "../workflow/tls.ts";
import { reportProgress } from "./report.ts";
import type { ListOptions, RunStore } from "./store.ts";
import { SQLiteStore } from "./sqlite_store.ts";
import { type Dashboard, type DashboardOptions, serveDashboard } from "./dashboard.ts";

/** Options of {@linkcode serve}. */
export interface ServeOptions {
  /** The server-side implementations of the workflows to serve. */
  workflows: TaskSet<AnyWorkflow, "server"> | readonly TaskSet<AnyWorkflow, "server">[];
  /** The address to listen on.
   *
   * @default {"127.0.0.1"} */
  host?: string;
  /** The port to listen on; `0` picks a free one (see {@linkcode WorkflowServer.port}).
   *
   * @default {50051} */
  port?: number;
  /**
   * Where runs are kept. The default is an embedded SQLite file, `.workflow/runs.db` under
   * the working folder, which the server opens and closes; pass a {@linkcode SQLiteStore}
   * for another path or durability, a `MongoStore` (from `@tradeline/workflow/mongo`) to
   * share runs between servers, or a `MemoryStore` for no persistence. On start, the server
   * continues every unfinished run of the workflows it serves that it finds in the store.
   *
   * @default {new SQLiteStore()}
   */
  store?: RunStore;
  /** Serve one run, then shut down (as the original's solo mode did).
   *
   * @default {false} */
  solo?: boolean;
  /** Print task progress and a table per finished run: `true` prints to standard output,
   * a function receives the lines, `false` prints nothing.
   *
   * @default {true} */
  progress?: boolean | LineWriter;
  /** How long {@linkcode WorkflowServer.shutdown} waits for in-flight tasks, in ms.
   *
   * @default {10000} */
  shutdownGrace?: number;
  /** Shuts the server down when aborted. */
  signal?: AbortSignal;
  /**
   * Names this server to the others that share its store. A run being served carries a lease
   * in the store, renewed by every write; another server does not take the run over until
   * the lease lapses (`leaseTime`), while a server that restarts under the same id takes its
   * runs back at once. A graceful shutdown gives its leases up.
   *
   * @default {`${hostname}:${port}`} (a random id when the hostname cannot be read)
   */
  serverId?: string;
  /** How long a run's lease lasts after each write, in ms.
   *
   * @default {30000} */
  leaseTime?: number;
  /**
   * Serve the web dashboard and its JSON API (which the CLI's `--server` mode reads) on
   * their own port, bound to `127.0.0.1` unless `host` says otherwise; see
   * {@linkcode WorkflowServer.dashboardUrl}. Leave it out for no dashboard.
   *
   * @example
   * ```ts ignore
   * const server = await serve({ workflows: tasks, dashboard: { port: 8080 } });
   * console.log(`dashboard at ${server.dashboardUrl}`); // http://127.0.0.1:8080/
   * ```
   *
   * @default {undefined}
   */
  dashboard?: DashboardOptions;
  /**
   * Serve over TLS: the server's certificate and key, and with `clientCa` mutual TLS.
   * Without it the server listens in plaintext, which is for loopback development: it
   * prints a warning when it listens so on any other address. See "Deploying" in the README.
   *
   * @default {undefined} (plaintext)
   */
  tls?: ServerTlsOptions;
  /**
   * Who may connect: maps each call to a principal or refuses it with `UNAUTHENTICATED`
   * (see {@linkcode bearerTokens} and {@linkcode clientCertificates}). A run belongs to the
   * principal that started it, and workflow keys are scoped per principal.
   *
   * @default {undefined} (every remote is accepted, anonymously)
   */
  authenticate?: Authenticator;
  /** Message size, stream, run, handshake, idle and keepalive limits.
   *
   * @default {DEFAULT_LIMITS} */
  limits?: ServerLimits;
}

/**
 * A running workflow server, made by {@linkcode serve}.
 */
export class WorkflowServer implements AsyncDisposable {
  /** The address the server listens on. */
  readonly host: string;
  /** The port the server listens on (the one picked, when `port: 0` was asked). */
  readonly port: number;
  /** Resolves when the server has shut down. */
  readonly finished: Promise<void>;
  readonly #grpc: grpc.Server;
  readonly #engine: Engine;
  readonly #events: EventHub;
  readonly #store: RunStore;
  readonly #ownsStore: boolean;
  readonly #grace: number;
  #shutdown?: Promise<void>;
  #resolveFinished!: () => void;
  /** The console reporter, when there is one: it drains before the store closes. */
  readonly #reporter?: Promise<void>;
  readonly #dashboard?: Dashboard;

  /** Use {@linkcode serve} instead. */
  constructor(
    parts: {
      grpc: grpc.Server;
      engine: Engine;
      events: EventHub;
      store: RunStore;
      ownsStore: boolean;
      host: string;
      port: number;
      grace: number;
      printer?: ConsolePrinter;
      dashboard?: DashboardOptions;
    },
  ) {
    this.#grpc = parts.grpc;
    this.#engine = parts.engine;
    this.#events = parts.events;
    this.#store = parts.store;
    this.#ownsStore = parts.ownsStore;
    this.#grace = parts.grace;
    this.host = parts.host;
    this.port = parts.port;
    this.finished = new Promise((resolve) => this.#resolveFinished = resolve);
    if (parts.dashboard) {
      try {
        this.#dashboard = serveDashboard(this, parts.dashboard);
      } catch (error) {
        this.#grpc.forceShutdown();
        if (parts.ownsStore) parts.store.close().catch(() => {});
        throw error;
      }
    }
    if (parts.printer) {
      this.#reporter = reportProgress(this.events(), (key) => this.run(key), parts.printer);
    }
  }

  /** The dashboard's address (such as `http://127.0.0.1:50052/`), when it was asked for. */
  get dashboardUrl(): string | undefined {
    return this.#dashboard?.url;
  }

  /** `host:port`, ready to give to a client. */
  get address(): string {
    return this.host.includes(":") ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  /**
   * Events of every run from now on, as an async iterable.
   *
   * @example Logging every completed task
   * ```ts ignore
   * for await (const event of server.events()) {
   *   if (event.type === "task.completed") console.log(event.key, event.task);
   * }
   * ```
   */
  events(options?: SubscribeOptions): AsyncIterable<WorkflowEvent> {
    return this.#events.subscribe(options);
  }

  /** Lists runs from the store. */
  runs(options?: ListOptions): Promise<RunSummary[]> {
    return this.#store.list(options);
  }

  /** The full record of one run, or `undefined`. */
  async run(key: string): Promise<RunRecord | undefined> {
    return this.#engine.runs.get(key)?.record ?? await this.#store.load(key);
  }

  /**
   * Pushes a one-way message (a topic the definition declares `from: "server"`) to the remote
   * attached to a run, for example a configuration update: its running task receives it with
   * `ctx.messages.receive(topic)`, without restarting.
   *
   * @example
   * ```ts ignore
   * server.send("crawl/eu", "config", { rate: 10 });
   * ```
   *
   * @throws {WorkflowError} `Unavailable` when the run has no remote attached (the message is
   * not queued), `InvalidPayload` when the topic is not one the server sends.
   */
  send(key: string, topic: string, value: unknown): void {
    const run = this.#engine.runs.get(key);
    if (!run?.attached) {
      throw new WorkflowError(
        ErrorCode.Unavailable,
        `Cannot send message "${topic}" to run "${key}": no remote is attached to it now`,
        { key },
      );
    }
    run.send(topic, value);
  }

  /**
   * Cancels a run: the task in flight sees its `ctx.signal` abort and its rollback hook runs,
   * a remote task that ignores the signal is stopped after a grace period, and the run is
   * recorded as cancelled.
   *
   * @example
   * ```ts ignore
   * if (!await server.cancel("dh-secret/alice", "requested by an operator")) {
   *   console.log("no such run, or it had already ended");
   * }
   * ```
   *
   * @param key The run's workflow key.
   * @param reason Why, for the record and the remote.
   * @returns `false` when there is no such run, or it had already ended.
   */
  cancel(key: string, reason = "cancelled by the server"): Promise<boolean> {
    return this.#engine.cancel(key, reason);
  }

  /**
   * Stops accepting remotes, lets in-flight tasks finish for up to `grace` milliseconds,
   * ends every call, and closes the store if the server opened it.
   */
  shutdown(options: { grace?: number } = {}): Promise<void> {
    this.#shutdown ??= (async () => {
      const grace = options.grace ?? this.#grace;
      await this.#engine.shutdown(Date.now() + grace);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.#grpc.forceShutdown();
          resolve();
        }, Math.min(grace, 2000));
        this.#grpc.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      this.#events.close();
      await this.#reporter;
      await this.#dashboard?.close();
      if (this.#ownsStore) await this.#store.close();
      this.#resolveFinished();
    })();
    return this.#shutdown;
  }

  /** Same as {@linkcode WorkflowServer.shutdown}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}

/**
 * Starts a workflow server: remotes dial in, and the server runs its tasks and dispatches
 * theirs.
 *
 * @example Serving the server half of a workflow
 * ```ts ignore
 * import { serve } from "@tradeline/workflow/server";
 * import { tasks } from "./server_tasks.ts";
 *
 * const server = await serve({ workflows: tasks, port: 50051 });
 * console.log(`listening on ${server.address}`);
 * ```
 *
 * @param options What to serve, where, and how.
 * @returns The running server.
 */
export async function serve(options: ServeOptions): Promise<WorkflowServer> {
  const workflows = Array.isArray(options.workflows) ? options.workflows : [options.workflows];
  if (workflows.length === 0) throw new TypeError("Cannot serve: no workflows were given");
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? 50051;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(`Cannot serve on port ${port}: expected an integer from 0 to 65535`);
  }
  const limits = resolveLimits(options.limits);
  const credentials = serverCredentials(options.tls);
  const store = options.store ?? new SQLiteStore();
  const events = new EventHub();
  const engine = new Engine({
    workflows: workflows as readonly TaskSet[],
    leaseTime: options.leaseTime,
    store,
    events,
    onFinished: () => {
      if (options.solo) queueMicrotask(() => server.shutdown());
    },
    admit: (key, principal) =>
      checkRunQuota(engine.runs.values(), key, principal, limits.maxRunsPerPrincipal),
  });
  const grpcServer = new grpc.Server(grpcServerOptions(limits));
  grpcServer.addService(SERVICE, {
    connect: guardedHandler({
      engine,
      limits,
      authenticate: options.authenticate,
      onError: (error) => console.error("workflow server:", error),
    }),
  });
  const target = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  const bound = await new Promise<number>((resolve, reject) => {
    grpcServer.bindAsync(target, credentials, (error, actual) => {
      if (error) {
        reject(new Error(`Cannot listen on ${target}: ${error.message}`, { cause: error }));
      } else resolve(actual);
    });
  });
  const server: WorkflowServer = new WorkflowServer({
    grpc: grpcServer,
    engine,
    events,
    store,
    ownsStore: options.store === undefined,
    host,
    port: bound,
    grace: options.shutdownGrace ?? 10_000,
    printer: printerFor(options.progress),
    dashboard: options.dashboard,
  });
  options.signal?.addEventListener("abort", () => server.shutdown(), { once: true });
  if (!options.tls && !isLoopback(host)) {
    console.warn(
      `workflow server: WARNING: listening on ${server.address} without TLS: anyone on the network can read and forge frames${
        options.authenticate ? ", and steal tokens" : ""
      }. Pass serve({ tls }) (see "Deploying" in the README); plaintext is for loopback development`,
    );
  }
  engine.holder = options.serverId ?? `${hostname()}:${bound}`;
  try {
    await engine.resumeUnfinished();
  } catch (error) {
    await server.shutdown({ grace: 0 });
    throw new Error(`Cannot resume the unfinished runs in the store: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return server;
}

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return crypto.randomUUID(); // no sys permission: this server is only ever itself
  }
}
