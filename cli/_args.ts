/**
 * The CLI's arguments: parsing with `node:util`'s `parseArgs`, checking, and the help texts.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { ListOptions } from "../server/store.ts";
import type { RunStatus } from "../workflow/state.ts";

/** A wrong command line: the CLI says what was wrong and exits with code 2. */
export class UsageError extends Error {
  /** The command whose help to point at, if known. */
  readonly command?: string;

  constructor(message: string, command?: string) {
    super(message);
    this.name = "UsageError";
    this.command = command;
  }
}

/** A failure that is not the command line's fault: the CLI exits with code 1. */
export class CliError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CliError";
  }
}

/** The CLI's commands. */
export const COMMANDS = ["list", "show", "watch", "cancel", "help"] as const;
/** One of {@linkcode COMMANDS}. */
export type Command = typeof COMMANDS[number];

/** Where runs are read from. */
export type SourceArgs =
  | { kind: "server"; url: string }
  | { kind: "mongodb"; url: string; database?: string; collection?: string }
  | { kind: "sqlite"; path: string; explicit: boolean };

/** A checked command line. */
export interface Args {
  command: Command;
  /** `--help`, or the `help` command: print help for `topic` (a command or the overview). */
  help: boolean;
  topic?: Command;
  json: boolean;
  /** `false` with `--no-color`; otherwise decided from the terminal and `NO_COLOR`. */
  colour: boolean | undefined;
  source: SourceArgs;
  /** The run key of `show`, `cancel`, and `watch <key>`. */
  key?: string;
  list: ListOptions;
  /** Store polling interval of `watch`, in ms. */
  interval: number;
  reason: string;
  offline: boolean;
}

/** The default SQLite store, relative to the working folder (the server's default too). */
export const DEFAULT_STORE = ".workflow/runs.db";
const STATUSES: readonly RunStatus[] = ["running", "completed", "failed", "cancelled"];

const OPTIONS = {
  help: { type: "boolean", short: "h" },
  json: { type: "boolean" },
  "no-color": { type: "boolean" },
  server: { type: "string" },
  store: { type: "string" },
  mongodb: { type: "string" },
  database: { type: "string" },
  collection: { type: "string" },
  status: { type: "string" },
  definition: { type: "string" },
  prefix: { type: "string" },
  after: { type: "string" },
  limit: { type: "string" },
  interval: { type: "string" },
  reason: { type: "string" },
  offline: { type: "boolean" },
} as const;

type Option = keyof typeof OPTIONS;

const COMMON: readonly Option[] = [
  "help",
  "json",
  "no-color",
  "server",
  "store",
  "mongodb",
  "database",
  "collection",
];
const ALLOWED: Record<Command, readonly Option[]> = {
  list: [...COMMON, "status", "definition", "prefix", "after", "limit"],
  show: COMMON,
  watch: [...COMMON, "definition", "prefix", "interval"],
  cancel: [...COMMON, "reason", "offline"],
  help: COMMON,
};

/**
 * Parses and checks a command line.
 *
 * @param argv The arguments after the program name.
 * @param env Reads an environment variable (`MONGODB_URL`).
 * @throws {UsageError} Saying what is wrong.
 */
export function parseCommandLine(
  argv: readonly string[],
  env: (name: string) => string | undefined,
): Args {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: OPTIONS,
      allowPositionals: true,
      strict: true,
      tokens: true,
    });
  } catch (error) {
    const command = argv.find((arg) => (COMMANDS as readonly string[]).includes(arg));
    throw new UsageError(parseArgsMessage(error as Error & { code?: string }), command);
  }
  const { values, positionals, tokens } = parsed;
  const [first, ...rest] = positionals;
  if (first === undefined) {
    if (values.help) return helpArgs(undefined);
    throw new UsageError("No command given: expected list, show, watch or cancel");
  }
  if (!(COMMANDS as readonly string[]).includes(first)) {
    throw new UsageError(
      `Unknown command "${first}": expected list, show, watch, cancel or help`,
    );
  }
  const command = first as Command;
  if (command === "help") {
    const topic = rest[0];
    if (rest.length > 1) throw new UsageError(`Unexpected argument "${rest[1]}"`, "help");
    if (topic !== undefined && !(COMMANDS as readonly string[]).includes(topic)) {
      throw new UsageError(`No help on "${topic}": expected list, show, watch or cancel`);
    }
    return helpArgs(topic as Command | undefined);
  }
  if (values.help) return helpArgs(command);
  for (const token of tokens) {
    if (token.kind === "option" && !ALLOWED[command].includes(token.name as Option)) {
      throw new UsageError(
        `Option "${token.rawName}" does not apply to "${command}"`,
        command,
      );
    }
  }

  let key: string | undefined;
  if (command === "show" || command === "cancel") {
    if (rest.length === 0) {
      throw new UsageError(`"${command}" needs a run key: workflow ${command} <key>`, command);
    }
    key = rest[0];
    if (rest.length > 1) throw new UsageError(`Unexpected argument "${rest[1]}"`, command);
  } else if (command === "watch") {
    key = rest[0];
    if (rest.length > 1) throw new UsageError(`Unexpected argument "${rest[1]}"`, command);
    if (key !== undefined && (values.prefix !== undefined || values.definition !== undefined)) {
      throw new UsageError(
        `"watch <key>" follows one run: --prefix and --definition apply without a key`,
        command,
      );
    }
  } else if (rest.length > 0) {
    throw new UsageError(`Unexpected argument "${rest[0]}"`, command);
  }
  if (key === "") throw new UsageError("The run key is empty", command);

  const source = sourceOf(values, env, command);
  if (values.offline && source.kind === "server") {
    throw new UsageError(
      "--offline marks a run in a store; with --server the server cancels the run itself",
      command,
    );
  }
  return {
    command,
    help: false,
    json: values.json ?? false,
    colour: values["no-color"] ? false : undefined,
    source,
    key,
    list: listOptions(values, command),
    interval: integer(values.interval, "--interval", { min: 50, max: 60_000, fallback: 500 }),
    reason: values.reason?.trim() || "cancelled from the CLI",
    offline: values.offline ?? false,
  };
}

function helpArgs(topic: Command | undefined): Args {
  return {
    command: "help",
    help: true,
    topic,
    json: false,
    colour: undefined,
    source: { kind: "sqlite", path: DEFAULT_STORE, explicit: false },
    list: {},
    interval: 500,
    reason: "",
    offline: false,
  };
}

type Values = { [K in Option]?: (typeof OPTIONS)[K]["type"] extends "boolean" ? boolean : string };

function sourceOf(
  values: Values,
  env: (name: string) => string | undefined,
  command: Command,
): SourceArgs {
  const given = (["server", "mongodb", "store"] as const).filter((o) => values[o] !== undefined);
  if (given.length > 1) {
    throw new UsageError(
      `Give one source of runs, not ${given.map((o) => `--${o}`).join(" and ")}`,
      command,
    );
  }
  for (const name of ["server", "mongodb", "store"] as const) {
    if (values[name] === "") throw new UsageError(`--${name} needs a value`, command);
  }
  const mongoUrl = values.mongodb ?? (given.length === 0 ? env("MONGODB_URL") : undefined);
  if (!mongoUrl && (values.database !== undefined || values.collection !== undefined)) {
    throw new UsageError(
      "--database and --collection apply to a MongoDB store (--mongodb URL or MONGODB_URL)",
      command,
    );
  }
  if (values.server !== undefined) return { kind: "server", url: serverUrl(values.server) };
  if (mongoUrl) {
    return {
      kind: "mongodb",
      url: mongoUrl,
      database: values.database,
      collection: values.collection,
    };
  }
  return {
    kind: "sqlite",
    path: values.store ?? DEFAULT_STORE,
    explicit: values.store !== undefined,
  };
}

function serverUrl(given: string): string {
  const text = /^[a-z][a-z0-9+.-]*:\/\//i.test(given) ? given : `http://${given}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`Bad --server "${given}": expected a URL such as http://127.0.0.1:50052`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`Bad --server "${given}": expected an http:// or https:// URL`);
  }
  if (url.search || url.hash) {
    throw new UsageError(`Bad --server "${given}": expected no query or fragment`);
  }
  return url.href.replace(/\/+$/, "");
}

function listOptions(values: Values, command: Command): ListOptions {
  const options: ListOptions = {};
  if (values.status !== undefined) {
    if (!STATUSES.includes(values.status as RunStatus)) {
      throw new UsageError(
        `Unknown status "${values.status}": expected one of ${STATUSES.join(", ")}`,
        command,
      );
    }
    options.status = values.status as RunStatus;
  }
  if (values.definition !== undefined) options.definition = values.definition;
  if (values.prefix !== undefined) options.keyPrefix = values.prefix;
  if (values.after !== undefined) options.after = values.after;
  if (command === "list") {
    options.limit = integer(values.limit, "--limit", { min: 1, max: 1000, fallback: 50 });
  }
  return options;
}

function integer(
  text: string | undefined,
  name: string,
  range: { min: number; max: number; fallback: number },
): number {
  if (text === undefined) return range.fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < range.min || value > range.max) {
    throw new UsageError(
      `Bad ${name} "${text}": expected an integer from ${range.min} to ${range.max}`,
    );
  }
  return value;
}

function parseArgsMessage(error: Error & { code?: string }): string {
  const option = /'(-[^' ]*)/.exec(error.message)?.[1];
  switch (error.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `Unknown option "${option ?? error.message}"`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return option && /argument missing/.test(error.message)
        ? `Option "${option}" needs a value`
        : option
        ? `Option "${option}" takes no value`
        : error.message;
    default:
      return error.message;
  }
}

const INVOCATION = `Run it as: deno run -A jsr:@tradeline/workflow/cli <command>
In this repository:  deno task cli <command>
Or install it once:  deno install -g -A -n workflow jsr:@tradeline/workflow/cli`;

const SOURCES = `Where runs are read from (one of; the default is the SQLite file):
  --server URL       a running server's dashboard API, serve({ dashboard }),
                     such as http://127.0.0.1:50052 (live events, cancellation)
  --mongodb URL      a MongoDB store (default: $MONGODB_URL when set)
    --database NAME    its database (default: workflow)
    --collection NAME  its collection (default: runs)
  --store PATH       a SQLite store file (default: ${DEFAULT_STORE})

Output:
  --json             machine-readable output on standard output
  --no-color         no colours (also with NO_COLOR, or when output is not a terminal)
  -h, --help         this help`;

const HELP: Record<"overview" | Exclude<Command, "help">, string> = {
  overview: `workflow: list, inspect, watch and cancel workflow runs

Usage: workflow <command> [options]

Commands:
  list            list runs, with filters and paging
  show <key>      one run's tasks as a timeline
  watch [key]     follow runs live (with a key: until that run ends)
  cancel <key>    cancel a running run (needs --server, see "workflow cancel --help")
  help [command]  this help, or a command's

${SOURCES}

Exit codes: 0 success; 1 failure (no such run, source unreachable, run not
completed); 2 bad arguments; 130 interrupted.

${INVOCATION}`,
  list: `workflow list: list runs, ordered by key

Usage: workflow list [--status S] [--definition NAME] [--prefix P] [--after KEY] [--limit N]

  --status S         only runs with this status: running, completed, failed, cancelled
  --definition NAME  only runs of this workflow definition
  --prefix P         only runs whose key starts with P
  --after KEY        only runs whose key sorts after KEY (the next page)
  --limit N          at most N runs, 1 to 1000 (default: 50)

A full page ends with the --after value of the next one.
--json prints {"runs": [RunSummary...], "next": "<key>" | null}.

${SOURCES}`,
  show: `workflow show: one run's tasks as a timeline

Usage: workflow show <key>

Prints the run's status and, per task, its side, status, attempts, start,
duration, a bar of when it ran, its progress and its last error.
--json prints the run view: {"key", "definition", "status", "done", "total",
"tasks": [{"name", "side", "status", "attempts", "startedAt"?, "finishedAt"?,
"durationMs"?, "progress"?, "error"?}], "error"?, "createdAt", "updatedAt",
"version"}, the same as GET /api/runs/<key>. Exits 1 when there is no such run.

${SOURCES}`,
  watch: `workflow watch: follow runs live

Usage: workflow watch [key] [--prefix P] [--definition NAME] [--interval MS]

In a terminal, redraws a table of the runs (most recently changed first), or
with a key that run's timeline; otherwise prints one line per event.
With a key, it waits for the run to start if needed and ends when the run ends:
exit 0 when it completed, 1 when it failed or was cancelled.
Without a key, it runs until interrupted (Ctrl-C).

  --prefix P         only runs whose key starts with P
  --definition NAME  only runs of this workflow definition
  --interval MS      how often to read a store, 50 to 60000 (default: 500);
                     with --server, events arrive as they happen

--json prints one event per line: {"type", "key", "at", ...} as the server's
events() gives them. Read from a store, events are derived from what changed
between two reads, so progress between reads is not seen.

${SOURCES}`,
  cancel: `workflow cancel: cancel a running run

Usage: workflow cancel <key> --server URL [--reason TEXT]
       workflow cancel <key> --offline [--store PATH | --mongodb URL]

With --server, the server cancels the run: the task in flight sees its
ctx.signal abort, its rollback hook runs, a remote task that ignores the
signal is stopped after a grace period, and the run is recorded as cancelled.

A store alone cannot stop a task that a live server is running, so without
--server the command refuses, unless --offline is given: it then marks the run
cancelled in the store, for a run that no server is running (its server is
gone, or no longer serves its definition). No task is aborted and no rollback
hook runs; a live server running it would fail its next save with a Conflict.

  --reason TEXT      why, for the record (default: "cancelled from the CLI")
  --offline          mark the record in the store (see above)

Exits 0 when the run was cancelled, 1 when there is no such run or it had
already ended. --json prints {"key", "cancelled": true|false, "status"?, "error"?}.

${SOURCES}`,
};

/** The help text of a command, or the overview. */
export function helpText(topic: Command | undefined): string {
  return topic === undefined || topic === "help" ? HELP.overview : HELP[topic];
}
