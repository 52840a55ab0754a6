/**
 * Readable progress on a console: one line per task change, and a table per finished run.
 * Colour when the output is a terminal and `NO_COLOR` is not set; plain text otherwise.
 *
 * @module
 */
import type { Side } from "./definition.ts";
import type { ErrorRecord, RunStatus, TaskStatus } from "./state.ts";

/** Where printed lines go. */
export type LineWriter = (line: string) => void;

/** The escape sequences of the colours used on consoles. */
export const ANSI = {
  reset: "\x1b[0m",
  dim: "\x1b[2m",
  bold: "\x1b[1m",
  red: "\x1b[31m",
  green: "\x1b[32m",
  yellow: "\x1b[33m",
  blue: "\x1b[34m",
  magenta: "\x1b[35m",
  cyan: "\x1b[36m",
} as const;

/** A colour name. */
export type Colour = keyof typeof ANSI;

/** The mark and colour of each task and run status, shared by every console view. */
export const STATUS_STYLE: Record<TaskStatus | RunStatus, { mark: string; colour: Colour }> = {
  pending: { mark: "·", colour: "dim" },
  running: { mark: "▶", colour: "cyan" },
  completed: { mark: "✔", colour: "green" },
  skipped: { mark: "↷", colour: "green" },
  failed: { mark: "✘", colour: "red" },
  retrying: { mark: "↻", colour: "yellow" },
  cancelled: { mark: "■", colour: "magenta" },
};

/** One task's row in a table. */
export interface TaskRow {
  name: string;
  side: Side;
  status: TaskStatus;
  attempts: number;
  durationMs?: number;
  error?: ErrorRecord;
}

/** Whether colour should be used on standard output. */
export function useColour(): boolean {
  try {
    return !Deno.noColor && Deno.stdout.isTerminal();
  } catch {
    return false;
  }
}

/** Fewest milliseconds between two plain progress lines of one task. */
const PLAIN_PROGRESS_INTERVAL = 1000;
const BAR_WIDTH = 24;

/**
 * The printer a `progress` option asks for: `false` none, a function its own lines,
 * anything else standard output.
 */
export function printerFor(progress: boolean | LineWriter | undefined): ConsolePrinter | undefined {
  if (progress === false) return undefined;
  return new ConsolePrinter(typeof progress === "function" ? progress : undefined);
}

/** Prints task progress lines and run tables. */
export class ConsolePrinter {
  readonly #write: LineWriter;
  readonly #colour: boolean;
  /** Redraw a progress bar in place: only when printing to a terminal. */
  readonly #live: boolean;
  #barShown = false;
  readonly #lastPlain = new Map<string, number>();

  /**
   * @param write Where lines go; standard output by default.
   * @param colour Whether to colour; decided from the terminal and `NO_COLOR` by default.
   */
  constructor(write?: LineWriter, colour: boolean = useColour()) {
    this.#write = write ?? ((line) => console.log(line));
    this.#colour = colour;
    this.#live = write === undefined && colour;
  }

  #emit(line: string): void {
    if (this.#barShown) {
      this.#barShown = false;
      Deno.stdout.writeSync(new TextEncoder().encode("\r\x1b[2K"));
    }
    this.#write(line);
  }

  /**
   * Shows a task's progress: a bar redrawn in place on a terminal, otherwise a plain line at
   * most once a second per task (and always at 100%).
   */
  progress(
    key: string,
    task: { index: number; name: string; side: Side },
    total: number,
    fraction: number,
    note: string,
  ): void {
    const percent = `${Math.round(fraction * 100)}%`.padStart(4);
    if (this.#live) {
      const filled = Math.round(fraction * BAR_WIDTH);
      const bar = `${"█".repeat(filled)}${"░".repeat(BAR_WIDTH - filled)}`;
      const columns = terminalColumns();
      let text = `${clock()}  ${printable(key)}  [${
        task.index + 1
      }/${total}]  ${task.name}  ${bar} ${percent}  ${printable(note)}`;
      if (text.length > columns - 1) text = text.slice(0, columns - 2) + "…";
      Deno.stdout.writeSync(new TextEncoder().encode(`\r\x1b[2K${this.#paint("cyan", text)}`));
      this.#barShown = true;
      return;
    }
    const id = `${key}\u0000${task.name}`;
    const now = Date.now();
    if (fraction < 1 && now - (this.#lastPlain.get(id) ?? 0) < PLAIN_PROGRESS_INTERVAL) return;
    this.#lastPlain.set(id, now);
    this.task(key, task, total, "running", { note: `${percent.trim()} ${note}`.trimEnd() });
  }

  #paint(colour: Colour, text: string): string {
    return this.#colour ? `${ANSI[colour]}${text}${ANSI.reset}` : text;
  }

  /** Prints one line for a task's change of status. */
  task(
    key: string,
    task: { index: number; name: string; side: Side },
    total: number,
    status: TaskStatus,
    detail: { attempt?: number; durationMs?: number; error?: ErrorRecord; note?: string } = {},
  ): void {
    const style = STATUS_STYLE[status];
    const parts = [
      this.#paint("dim", clock()),
      this.#paint("bold", printable(key)),
      `[${task.index + 1}/${total}]`,
      this.#paint(task.side === "server" ? "blue" : "magenta", task.side.padEnd(6)),
      task.name,
      this.#paint(style.colour, `${style.mark} ${status}`),
    ];
    if (detail.attempt && detail.attempt > 1) parts.push(`attempt ${detail.attempt}`);
    if (detail.durationMs !== undefined) {
      parts.push(this.#paint("dim", formatDuration(detail.durationMs)));
    }
    if (detail.note) parts.push(printable(detail.note));
    if (detail.error) {
      parts.push(
        this.#paint("red", printable(`${detail.error.code}: ${detail.error.message}`)),
      );
    }
    if (status !== "running") this.#lastPlain.delete(`${key}\u0000${task.name}`);
    this.#emit(parts.join("  "));
  }

  /** Prints a free line about a run. */
  line(key: string, text: string, colour: Colour = "bold"): void {
    this.#emit(
      `${this.#paint("dim", clock())}  ${this.#paint("bold", printable(key))}  ${
        this.#paint(colour, printable(text))
      }`,
    );
  }

  /** Prints the table of a run's tasks. */
  table(key: string, status: RunStatus, rows: readonly TaskRow[]): void {
    const header = ["#", "task", "side", "status", "attempts", "time"];
    const cells = rows.map((row, i) => [
      String(i + 1),
      row.name,
      row.side,
      `${STATUS_STYLE[row.status].mark} ${row.status}`,
      String(row.attempts),
      row.durationMs === undefined ? "" : formatDuration(row.durationMs),
    ]);
    const widths = header.map((h, c) => Math.max(h.length, ...cells.map((r) => r[c].length)));
    const format = (row: string[]) =>
      row.map((cell, c) => cell.padEnd(widths[c])).join("  ").trimEnd();
    const style = STATUS_STYLE[status];
    this.#emit(
      `${this.#paint("bold", `run ${printable(key)}`)}  ${
        this.#paint(style.colour, `${style.mark} ${status}`)
      }`,
    );
    this.#write(this.#paint("dim", `  ${format(header)}`));
    rows.forEach((row, i) => {
      const colour = STATUS_STYLE[row.status].colour;
      this.#write(`  ${this.#paint(colour, format(cells[i]))}`);
      if (row.error && row.status !== "completed") {
        this.#write(
          `     ${this.#paint("red", printable(`${row.error.code}: ${row.error.message}`))}`,
        );
      }
    });
  }
}

/**
 * Text from a run (keys, notes, error messages) with its control characters made visible, so
 * that nobody can move the cursor or retitle the terminal of whoever watches the run.
 */
export function printable(text: string): string {
  return text.replace(
    CONTROL_CHARACTERS,
    (c) => c === "\t" ? " " : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

// deno-lint-ignore no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/g;

function terminalColumns(): number {
  try {
    return Deno.consoleSize().columns;
  } catch {
    return 100;
  }
}

function clock(): string {
  return new Date().toISOString().slice(11, 23);
}

/** Formats milliseconds for people: `820 µs`, `12.3 ms`, `4.56 s`. */
export function formatDuration(ms: number): string {
  if (ms < 1) return `${Math.round(ms * 1000)} µs`;
  if (ms < 1000) return `${ms < 10 ? ms.toFixed(1) : Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}
