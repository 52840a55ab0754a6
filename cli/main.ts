/**
 * The command line: list, inspect, watch and cancel workflow runs, read from a store (SQLite
 * or MongoDB) or from a running server's dashboard API.
 *
 * ```sh
 * deno run -A jsr:@tradeline/workflow/cli list --status running
 * deno run -A jsr:@tradeline/workflow/cli show dh-secret/alice
 * deno run -A jsr:@tradeline/workflow/cli watch --server http://127.0.0.1:50052
 * deno run -A jsr:@tradeline/workflow/cli cancel dh-secret/alice --server http://127.0.0.1:50052
 * ```
 *
 * Every command takes `--help` and `--json`. Exit codes: 0 success, 1 failure, 2 bad
 * arguments, 130 interrupted.
 *
 * @example Running the CLI from a script
 * ```ts ignore
 * import { main } from "@tradeline/workflow/cli";
 *
 * const code = await main(["list", "--store", "runs.db", "--json"]);
 * ```
 *
 * @module
 */
import {
  type Args,
  CliError,
  type Command,
  helpText,
  parseCommandLine,
  UsageError,
} from "./_args.ts";
import { clean, Painter, renderEvent, renderList, renderRun } from "./_render.ts";
import { openSource, type Source } from "./_source.ts";
import { useColour } from "../workflow/console.ts";
import type { RunView } from "../server/dashboard.ts";
import type { RunSummary, WorkflowEvent } from "../workflow/state.ts";

/** Options of {@linkcode main}. */
export interface MainOptions {
  /**
   * Reads an environment variable (`MONGODB_URL`).
   *
   * @default {(name) => Deno.env.get(name)}
   */
  env?: (name: string) => string | undefined;
  /** Stops `watch`, as Ctrl-C does (which is also handled). */
  signal?: AbortSignal;
}

/**
 * Runs the CLI with `argv` (the arguments after the program name), printing to standard
 * output and errors to standard error.
 *
 * @example
 * ```ts ignore
 * import { main } from "@tradeline/workflow/cli";
 *
 * Deno.exit(await main(["show", "dh-secret/alice", "--store", ".workflow/runs.db"]));
 * ```
 *
 * @param argv The command line, such as `["list", "--status", "failed"]`.
 * @param options Where the environment comes from, and a signal to stop `watch`.
 * @returns The exit code: 0 success, 1 failure, 2 bad arguments, 130 interrupted.
 */
export async function main(argv: readonly string[], options: MainOptions = {}): Promise<number> {
  let args: Args;
  try {
    args = parseCommandLine(argv, options.env ?? ((name) => Deno.env.get(name)));
  } catch (error) {
    return reportError(error);
  }
  if (args.help) {
    write(`${helpText(args.topic)}\n`);
    return 0;
  }
  const painter = new Painter(args.colour ?? useColour());
  let source: Source | undefined;
  try {
    source = await openSource(args.source);
    switch (args.command) {
      case "list":
        return await list(source, args, painter);
      case "show":
        return await show(source, args, painter);
      case "cancel":
        return await cancel(source, args, painter);
      default:
        return await watchWithSignals(source, args, painter, options.signal);
    }
  } catch (error) {
    return reportError(error, args.command);
  } finally {
    await source?.close().catch(() => {});
  }
}

function reportError(error: unknown, command?: Command): number {
  if (error instanceof Deno.errors.BrokenPipe) return 0;
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof UsageError) {
    const topic = error.command ?? command;
    const help = topic && topic !== "help" ? `workflow ${topic} --help` : "workflow --help";
    writeError(`workflow: ${message}\nSee "${help}" for usage.\n`);
    return 2;
  }
  writeError(`workflow: ${message}\n`);
  if (!(error instanceof CliError) && error instanceof Error && error.stack) {
    writeError(`${error.stack}\n`);
  }
  return 1;
}

const encoder = new TextEncoder();

function writeAll(file: { writeSync(p: Uint8Array): number }, text: string): void {
  let bytes = encoder.encode(text);
  while (bytes.length > 0) bytes = bytes.subarray(file.writeSync(bytes));
}

function write(text: string): void {
  writeAll(Deno.stdout, text);
}

function writeError(text: string): void {
  try {
    writeAll(Deno.stderr, text);
  } catch {
    // Nowhere left to say it.
  }
}

function print(lines: string[]): void {
  write(lines.map((line) => `${line}\n`).join(""));
}

function printJson(value: unknown): void {
  write(`${JSON.stringify(value, null, 2)}\n`);
}

async function list(source: Source, args: Args, painter: Painter): Promise<number> {
  const page = await source.list(args.list);
  if (args.json) printJson(page);
  else print(renderList(page.runs, page.next, painter));
  return 0;
}

async function show(source: Source, args: Args, painter: Painter): Promise<number> {
  const run = await source.run(args.key!);
  if (!run) throw new CliError(`No run "${args.key}" in ${source.name}`);
  if (args.json) printJson(run);
  else print(renderRun(run, painter));
  return 0;
}

async function cancel(source: Source, args: Args, painter: Painter): Promise<number> {
  const result = await source.cancel(args.key!, { reason: args.reason, offline: args.offline });
  if (args.json) printJson(result);
  else if (result.cancelled) {
    print([painter.paint("magenta", `Cancelled run "${clean(result.key)}"`)]);
  } else writeError(`workflow: ${clean(result.error ?? "not cancelled")}\n`);
  return result.cancelled ? 0 : 1;
}

async function watchWithSignals(
  source: Source,
  args: Args,
  painter: Painter,
  signal: AbortSignal | undefined,
): Promise<number> {
  const controller = new AbortController();
  const stop = () => controller.abort();
  signal?.addEventListener("abort", stop, { once: true });
  let listening = false;
  try {
    Deno.addSignalListener("SIGINT", stop);
    listening = true;
  } catch {
    // Not on this platform, or not allowed: Ctrl-C then ends the process as usual.
  }
  try {
    return await watch(source, args, painter, controller.signal) ?? 130;
  } finally {
    if (listening) Deno.removeSignalListener("SIGINT", stop);
    signal?.removeEventListener("abort", stop);
  }
}

const FINAL = new Set(["run.completed", "run.failed", "run.cancelled"]);

/**
 * Follows events until the watched run ends (returning its exit code) or `signal` aborts
 * (returning `undefined`).
 */
async function watch(
  source: Source,
  args: Args,
  painter: Painter,
  signal: AbortSignal,
): Promise<number | undefined> {
  const key = args.key;
  const terminal = !args.json && isTerminal();
  const ready = Promise.withResolvers<void>();
  const done = new AbortController();
  const events = source.events({
    key,
    filter: { keyPrefix: args.list.keyPrefix, definition: args.list.definition },
    interval: args.interval,
    signal: AbortSignal.any([signal, done.signal]),
    onReady: ready.resolve,
  })[Symbol.asyncIterator]();
  let pending = events.next();
  await Promise.race([ready.promise, pending]);
  if (signal.aborted) return undefined;
  const redraw = terminal ? screen(source, args, painter) : undefined;
  const ticker = redraw ? setInterval(() => redraw.refresh(), 1000) : undefined;
  try {
    if (key !== undefined) {
      const run = await source.run(key);
      if (run && run.status !== "running") {
        if (!args.json) print(renderRun(run, painter));
        return exitCodeOf(run);
      }
      if (!run) writeError(`workflow: waiting for run "${clean(key)}" to start…\n`);
    }
    await redraw?.refresh();
    for (;;) {
      const next = await pending;
      if (next.done) return undefined;
      const event: WorkflowEvent = next.value;
      pending = events.next();
      if (args.json) write(`${JSON.stringify(event)}\n`);
      else if (redraw) void redraw.refresh();
      else write(`${renderEvent(event, painter)}\n`);
      if (key !== undefined && event.key === key && FINAL.has(event.type)) {
        const run = await source.run(key);
        await redraw?.refresh();
        if (run && !args.json && !redraw) print(renderRun(run, painter));
        return run ? exitCodeOf(run) : 1;
      }
    }
  } finally {
    clearInterval(ticker);
    done.abort();
    pending.catch(() => {});
    await events.return?.();
  }
}

function exitCodeOf(run: RunView): number {
  return run.status === "completed" ? 0 : 1;
}

function isTerminal(): boolean {
  try {
    return Deno.stdout.isTerminal();
  } catch {
    return false;
  }
}

/** A terminal screen that redraws, one redraw at a time; calls meanwhile fold into one. */
function screen(source: Source, args: Args, painter: Painter): { refresh(): Promise<void> } {
  let running: Promise<void> | undefined;
  let again = false;
  const draw = async () => {
    const now = Date.now();
    const heading = painter.paint(
      "dim",
      `watching ${source.name} · ${new Date(now).toLocaleTimeString()} · Ctrl-C to stop`,
    );
    let lines: string[];
    if (args.key !== undefined) {
      const run = await source.run(args.key);
      lines = run
        ? renderRun(run, painter, now)
        : [`waiting for run "${clean(args.key)}" to start…`];
    } else {
      const page = await source.list({
        keyPrefix: args.list.keyPrefix,
        definition: args.list.definition,
        limit: 1000,
      });
      const rows = Math.max(3, rowsOfTerminal() - 4);
      const recent = [...page.runs].sort(byRecent).slice(0, rows);
      lines = renderList(recent, null, painter, now);
      if (page.runs.length > recent.length) {
        lines.push(painter.paint("dim", `… and ${page.runs.length - recent.length} more`));
      }
    }
    write(`\x1b[H\x1b[2J${heading}\n\n${lines.join("\n")}\n`);
  };
  const refresh = (): Promise<void> => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await draw();
        } while (again);
      } catch (error) {
        writeError(`workflow: ${(error as Error).message}\n`);
      } finally {
        running = undefined;
      }
    })();
    return running;
  };
  return { refresh };
}

function byRecent(a: RunSummary, b: RunSummary): number {
  const running = Number(b.status === "running") - Number(a.status === "running");
  return running || b.updatedAt - a.updatedAt;
}

function rowsOfTerminal(): number {
  try {
    return Deno.consoleSize().rows;
  } catch {
    return 24;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
