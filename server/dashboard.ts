/**
 * The web dashboard: one HTML page (inline CSS and JavaScript, no build step) that lists runs
 * and shows one run's tasks as a timeline, updated live through server-sent events, and the
 * JSON API behind it, which the CLI's `--server` mode uses too.
 *
 * | route                          | what                                                      |
 * | ------------------------------ | --------------------------------------------------------- |
 * | `GET /`                        | the page                                                  |
 * | `GET /api/runs`                | `{ runs: RunSummary[], next: string \| null }`; query `status`, `definition`, `prefix`, `after`, `limit` |
 * | `GET /api/runs/:key`           | a {@linkcode RunView}, or 404                             |
 * | `POST /api/runs/:key/cancel`   | `{ key, cancelled: true }`; 404 no such run, 409 already ended; needs the header `X-Workflow-Request` |
 * | `GET /api/events`              | server-sent events, one `WorkflowEvent` as JSON per message; query `key` or `prefix` |
 *
 * Keys are percent-encoded path segments (`encodeURIComponent`). Task outputs and the
 * server's private data are never served.
 *
 * @example With the server
 * ```ts ignore
 * import { serve } from "@tradeline/workflow/server";
 *
 * await using server = await serve({ workflows: tasks, dashboard: { port: 8080 } });
 * console.log(`dashboard at ${server.dashboardUrl}`);
 * ```
 *
 * @module
 */
import type { ListOptions } from "./store.ts";
import type {
  ErrorRecord,
  RunRecord,
  RunStatus,
  RunSummary,
  TaskRecord,
  WorkflowEvent,
} from "../workflow/state.ts";
import { dashboardPage } from "./dashboard_page.ts";

export type { ListOptions } from "./store.ts";
export type {
  ErrorRecord,
  RunRecord,
  RunStatus,
  RunSummary,
  TaskRecord,
  TaskStatus,
  WorkflowEvent,
} from "../workflow/state.ts";
export type { Side } from "../workflow/definition.ts";

/** What the dashboard shows and acts on; a `WorkflowServer` is one. */
export interface DashboardSource {
  /** Events of every run from now on, until `signal` aborts. */
  events(options?: { signal?: AbortSignal }): AsyncIterable<WorkflowEvent>;
  /** Lists runs. */
  runs(options?: ListOptions): Promise<RunSummary[]>;
  /** One run's record, or `undefined`. */
  run(key: string): Promise<RunRecord | undefined>;
  /** Cancels a run; `false` when there is no such run or it had already ended. */
  cancel(key: string, reason?: string): Promise<boolean>;
}

/** One task of a {@linkcode RunView}. */
export interface TaskView extends TaskRecord {
  /** `finishedAt - startedAt` of the last attempt, once the task has finished. */
  durationMs?: number;
}

/**
 * A run as the dashboard API and the CLI's `--json` show it: its record without the task
 * outputs and the server's private data.
 */
export interface RunView {
  /** The workflow key. */
  key: string;
  /** The definition the run belongs to. */
  definition: { name: string; version: number; fingerprint: string };
  /** Where the run stands. */
  status: RunStatus;
  /** Tasks completed or skipped. */
  done: number;
  /** Tasks in all. */
  total: number;
  /** One entry per task, in definition order. */
  tasks: TaskView[];
  /** Why the run failed or was cancelled. */
  error?: ErrorRecord & { task?: string };
  /** The principal that started the run, when authentication is on. */
  principal?: string;
  /** When the run was created (ms since the epoch). */
  createdAt: number;
  /** When the record last changed (ms since the epoch). */
  updatedAt: number;
  /** The record's version. */
  version: number;
}

/**
 * The view of a record that the API serves: every field but the outputs and private data.
 *
 * @example
 * ```ts ignore
 * const view = toRunView((await server.run("dh/alice"))!);
 * console.log(view.tasks.map((t) => `${t.name}: ${t.status}`));
 * ```
 *
 * @param record A run's record.
 * @returns Its view.
 */
export function toRunView(record: RunRecord): RunView {
  const tasks = record.tasks.map((task): TaskView => {
    const view: TaskView = {
      name: task.name,
      side: task.side,
      status: task.status,
      attempts: task.attempts,
    };
    if (task.startedAt !== undefined) view.startedAt = task.startedAt;
    if (task.finishedAt !== undefined) view.finishedAt = task.finishedAt;
    if (task.startedAt !== undefined && task.finishedAt !== undefined) {
      view.durationMs = Math.max(0, task.finishedAt - task.startedAt);
    }
    if (task.progress) view.progress = { ...task.progress };
    if (task.error) view.error = { code: task.error.code, message: task.error.message };
    return view;
  });
  const view: RunView = {
    key: record.key,
    definition: { ...record.definition },
    status: record.status,
    done: tasks.filter((t) => t.status === "completed" || t.status === "skipped").length,
    total: tasks.length,
    tasks,
    createdAt: record.createdAt,
    updatedAt: record.updatedAt,
    version: record.version,
  };
  if (record.error) view.error = { ...record.error };
  if (record.principal !== undefined) view.principal = record.principal;
  return view;
}

/** Options of {@linkcode createDashboardHandler}. */
export interface DashboardHandlerOptions {
  /**
   * The host names the `Host` header may carry (without the port). Checking it defeats DNS
   * rebinding, where a web page on another site reaches a dashboard bound to loopback.
   * `undefined` accepts any.
   *
   * @default {undefined}
   */
  hostnames?: readonly string[];
  /**
   * Server-sent event streams open at once; more are refused with 503.
   *
   * @default {100}
   */
  maxStreams?: number;
  /**
   * How often an idle event stream gets a comment line, in ms, so proxies keep it open.
   *
   * @default {15000}
   */
  keepAlive?: number;
}

/** A request handler for the dashboard, to mount in your own HTTP server. */
export interface DashboardHandler {
  /** Answers one request. */
  (request: Request): Promise<Response>;
  /** Ends every open event stream (call it before shutting the HTTP server down). */
  close(): void;
}

/** The header every `POST` must carry: a cross-origin page cannot send it without CORS. */
export const REQUEST_HEADER = "X-Workflow-Request";

const STATUSES: readonly RunStatus[] = ["running", "completed", "failed", "cancelled"];
const MAX_BODY = 4096;
const encoder = new TextEncoder();

/**
 * Makes the dashboard's request handler, for mounting in an HTTP server of your own. It
 * serves the page and the JSON API under `/` and `/api/`.
 *
 * @example Mounting it with `Deno.serve`
 * ```ts ignore
 * import { createDashboardHandler } from "@tradeline/workflow/dashboard";
 *
 * const handler = createDashboardHandler(server, { hostnames: ["localhost", "127.0.0.1"] });
 * const http = Deno.serve({ hostname: "127.0.0.1", port: 8080 }, handler);
 * // later:
 * handler.close();
 * await http.shutdown();
 * ```
 *
 * @param source The runs to show, usually a `WorkflowServer`.
 * @param options Checks and limits.
 * @returns The handler.
 */
export function createDashboardHandler(
  source: DashboardSource,
  options: DashboardHandlerOptions = {},
): DashboardHandler {
  const streams = new Set<AbortController>();
  const maxStreams = options.maxStreams ?? 100;
  const keepAlive = options.keepAlive ?? 15_000;
  const hostnames = options.hostnames?.map((h) => h.toLowerCase());

  const handle = async (request: Request): Promise<Response> => {
    const url = new URL(request.url);
    const host = request.headers.get("host");
    if (hostnames && !hostAllowed(host, hostnames)) {
      return json(421, { error: `Host "${host ?? ""}" is not served here` });
    }
    const route = routeOf(url.pathname);
    if (route.kind === "bad") return json(400, { error: route.error });
    if (route.kind === "none") return json(404, { error: `No such page: ${url.pathname}` });
    const method = route.kind === "cancel" ? "POST" : "GET";
    if (request.method !== method) {
      return json(405, { error: `Use ${method} for ${url.pathname}` }, { allow: method });
    }
    try {
      switch (route.kind) {
        case "page":
          return page();
        case "runs":
          return await listRuns(source, url.searchParams);
        case "run": {
          const record = await source.run(route.key);
          return record
            ? json(200, toRunView(record))
            : json(404, { error: `No run "${route.key}"` });
        }
        case "cancel":
          return await cancel(source, route.key, request, host);
        case "events":
          if (streams.size >= maxStreams) {
            return json(503, { error: `Too many event streams open (${maxStreams})` });
          }
          return eventStream(source, url.searchParams, streams, keepAlive);
      }
    } catch (error) {
      return json(500, { error: (error as Error)?.message ?? String(error) });
    }
  };
  return Object.assign(handle, {
    close(): void {
      for (const stream of streams) stream.abort();
      streams.clear();
    },
  });
}

/** Options of {@linkcode serveDashboard}. */
export interface DashboardOptions {
  /**
   * The port to listen on; `0` picks a free one.
   *
   * @default {50052}
   */
  port?: number;
  /**
   * The address to listen on. Anything but loopback exposes run data and cancellation to the
   * network without authentication: put it behind a proxy that authenticates.
   *
   * @default {"127.0.0.1"}
   */
  host?: string;
}

/** A dashboard listening on a port, made by {@linkcode serveDashboard}. */
export class Dashboard implements AsyncDisposable {
  /** The page's address, such as `http://127.0.0.1:50052/`. */
  readonly url: string;
  readonly #http: Deno.HttpServer<Deno.NetAddr>;
  readonly #handler: DashboardHandler;
  #closed?: Promise<void>;

  /** Use {@linkcode serveDashboard} instead. */
  constructor(http: Deno.HttpServer<Deno.NetAddr>, handler: DashboardHandler, url: string) {
    this.#http = http;
    this.#handler = handler;
    this.url = url;
  }

  /** Ends every event stream and stops listening. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#handler.close();
      await this.#http.shutdown();
    })();
    return this.#closed;
  }

  /** Same as {@linkcode Dashboard.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Serves the dashboard on its own port with `Deno.serve`. `serve({ dashboard })` calls it
 * for you; call it yourself to show a store or a server from another process.
 *
 * When bound to loopback (the default), requests must name a loopback host
 * (`127.0.0.1`, `localhost` or `[::1]`).
 *
 * @example
 * ```ts ignore
 * import { serveDashboard } from "@tradeline/workflow/dashboard";
 *
 * await using dashboard = serveDashboard(server, { port: 0 });
 * console.log(`dashboard at ${dashboard.url}`);
 * ```
 *
 * @param source The runs to show, usually a `WorkflowServer`.
 * @param options Where to listen.
 * @returns The listening dashboard.
 * @throws {Error} When the address cannot be bound (naming it).
 */
export function serveDashboard(source: DashboardSource, options: DashboardOptions = {}): Dashboard {
  const host = options.host ?? "127.0.0.1";
  const port = options.port ?? 50052;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new RangeError(
      `Cannot serve the dashboard on port ${port}: expected an integer from 0 to 65535`,
    );
  }
  const loopback = ["127.0.0.1", "localhost", "::1", "[::1]"].includes(host.toLowerCase());
  const handler = createDashboardHandler(source, {
    hostnames: loopback ? ["127.0.0.1", "localhost", "[::1]"] : undefined,
  });
  let http: Deno.HttpServer<Deno.NetAddr>;
  try {
    http = Deno.serve({ hostname: host.replace(/^\[|\]$/g, ""), port, onListen() {} }, handler);
  } catch (error) {
    throw new Error(
      `Cannot serve the dashboard on ${host}:${port}: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const bound = http.addr;
  const shown = bound.hostname.includes(":") ? `[${bound.hostname}]` : bound.hostname;
  return new Dashboard(http, handler, `http://${shown}:${bound.port}/`);
}

type Route =
  | { kind: "page" | "runs" | "events" | "none" }
  | { kind: "run" | "cancel"; key: string }
  | { kind: "bad"; error: string };

function routeOf(pathname: string): Route {
  if (pathname === "/" || pathname === "/index.html") return { kind: "page" };
  if (pathname === "/api/runs") return { kind: "runs" };
  if (pathname === "/api/events") return { kind: "events" };
  const parts = pathname.split("/");
  // ["", "api", "runs", key] or ["", "api", "runs", key, "cancel"]
  if (parts.length < 4 || parts.length > 5 || parts[1] !== "api" || parts[2] !== "runs") {
    return { kind: "none" };
  }
  if (parts.length === 5 && parts[4] !== "cancel") return { kind: "none" };
  let key: string;
  try {
    key = decodeURIComponent(parts[3]);
  } catch {
    return { kind: "bad", error: `Cannot decode the run key "${parts[3]}": bad percent-encoding` };
  }
  if (key.length === 0) return { kind: "none" };
  return { kind: parts.length === 5 ? "cancel" : "run", key };
}

function hostAllowed(host: string | null, hostnames: readonly string[]): boolean {
  if (!host) return false;
  try {
    return hostnames.includes(new URL(`http://${host}`).hostname.toLowerCase());
  } catch {
    return false;
  }
}

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: {
      ...SECURITY_HEADERS,
      ...headers,
      "content-type": "application/json; charset=utf-8",
    },
  });
}

function page(): Response {
  const nonce = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(18))));
  return new Response(dashboardPage(nonce), {
    headers: {
      ...SECURITY_HEADERS,
      "content-type": "text/html; charset=utf-8",
      "x-frame-options": "DENY",
      "content-security-policy": [
        "default-src 'none'",
        `script-src 'nonce-${nonce}'`,
        `style-src 'nonce-${nonce}'`,
        "connect-src 'self'",
        "img-src data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
      ].join("; "),
    },
  });
}

async function listRuns(source: DashboardSource, query: URLSearchParams): Promise<Response> {
  const options: ListOptions = {};
  const status = query.get("status");
  if (status) {
    if (!STATUSES.includes(status as RunStatus)) {
      return json(400, {
        error: `Unknown status "${status}": expected one of ${STATUSES.join(", ")}`,
      });
    }
    options.status = status as RunStatus;
  }
  const definition = query.get("definition");
  if (definition) options.definition = definition;
  const prefix = query.get("prefix");
  if (prefix) options.keyPrefix = prefix;
  const after = query.get("after");
  if (after) options.after = after;
  const limitText = query.get("limit");
  const limit = limitText === null ? 100 : Number(limitText);
  if (!/^\d+$/.test(limitText ?? "1") || limit < 1 || limit > 1000) {
    return json(400, { error: `Bad limit "${limitText}": expected an integer from 1 to 1000` });
  }
  options.limit = limit;
  const runs = await source.runs(options);
  return json(200, { runs, next: runs.length === limit ? runs[runs.length - 1].key : null });
}

async function cancel(
  source: DashboardSource,
  key: string,
  request: Request,
  host: string | null,
): Promise<Response> {
  if (!request.headers.has(REQUEST_HEADER)) {
    return json(403, { error: `Refused: a POST must carry the header ${REQUEST_HEADER}` });
  }
  const origin = request.headers.get("origin");
  if (origin !== null && !sameOrigin(origin, host)) {
    return json(403, { error: `Refused: a POST from another origin (${origin})` });
  }
  let reason = "cancelled from the dashboard";
  const text = await request.text();
  if (text.length > MAX_BODY) return json(413, { error: `The body is over ${MAX_BODY} bytes` });
  if (text.trim()) {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      return json(400, { error: 'The body is not JSON: expected {"reason": "..."}' });
    }
    const given = (body as { reason?: unknown } | null)?.reason;
    if (given !== undefined && typeof given !== "string") {
      return json(400, { error: "The reason must be a string" });
    }
    if (given?.trim()) reason = given.trim().slice(0, 500);
  }
  const record = await source.run(key);
  if (!record) return json(404, { key, cancelled: false, error: `No run "${key}"` });
  if (record.status !== "running" || !await source.cancel(key, reason)) {
    const now = (await source.run(key))?.status ?? record.status;
    return json(409, {
      key,
      cancelled: false,
      status: now,
      error: `Run "${key}" has already ended (${now})`,
    });
  }
  return json(200, { key, cancelled: true });
}

function sameOrigin(origin: string, host: string | null): boolean {
  try {
    const parsed = new URL(origin);
    return (parsed.protocol === "http:" || parsed.protocol === "https:") &&
      host !== null && parsed.host === new URL(`http://${host}`).host;
  } catch {
    return false;
  }
}

function eventStream(
  source: DashboardSource,
  query: URLSearchParams,
  streams: Set<AbortController>,
  keepAlive: number,
): Response {
  const key = query.get("key");
  const prefix = query.get("prefix");
  const abort = new AbortController();
  streams.add(abort);
  const iterator = source.events({ signal: abort.signal })[Symbol.asyncIterator]();
  // Start the subscription now, before the headers go out: a client that loads the state once
  // the stream is open misses no event.
  let pending: Promise<IteratorResult<WorkflowEvent>> | undefined = iterator.next();
  let timer: ReturnType<typeof setInterval> | undefined;
  const stop = () => {
    streams.delete(abort);
    abort.abort();
    clearInterval(timer);
  };
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(encoder.encode("retry: 2000\n: connected\n\n"));
      timer = setInterval(() => {
        try {
          controller.enqueue(encoder.encode(": keep-alive\n\n"));
        } catch {
          stop();
        }
      }, keepAlive);
    },
    async pull(controller) {
      for (;;) {
        const next = await (pending ?? iterator.next());
        pending = undefined;
        if (next.done) {
          stop();
          controller.close();
          return;
        }
        const event = next.value;
        if (key !== null && event.key !== key) continue;
        if (prefix !== null && !event.key.startsWith(prefix)) continue;
        controller.enqueue(encoder.encode(`data: ${JSON.stringify(event)}\n\n`));
        return;
      }
    },
    cancel() {
      stop();
      iterator.return?.()?.catch(() => {});
    },
  });
  return new Response(body, {
    headers: {
      ...SECURITY_HEADERS,
      "content-type": "text/event-stream; charset=utf-8",
      "x-accel-buffering": "no",
    },
  });
}
