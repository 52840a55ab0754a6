/**
 * The CLI's text output: tables of runs, a run's timeline, and event lines. Colour only when
 * asked; run data is stripped of control characters so it cannot drive the terminal.
 *
 * @module
 */
import { ANSI, type Colour, formatDuration, STATUS_STYLE } from "../workflow/console.ts";
import type { RunView, TaskView } from "../server/dashboard.ts";
import type { RunStatus, RunSummary, WorkflowEvent } from "../workflow/state.ts";

export type { Colour };

const STATUS = STATUS_STYLE;

/**
 * Removes what could drive a terminal from run data: control characters (C0, DEL, C1) are
 * shown as `\xNN`, and a line break as `⏎`.
 */
export function clean(text: string): string {
  return String(text).replace(
    // deno-lint-ignore no-control-regex
    /[\u0000-\u001f\u007f-\u009f]/g,
    (c) => c === "\n" ? "⏎" : `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}

/** Paints text, or not. */
export class Painter {
  readonly colour: boolean;

  constructor(colour: boolean) {
    this.colour = colour;
  }

  paint(colour: Colour | undefined, text: string): string {
    return this.colour && colour ? `${ANSI[colour]}${text}${ANSI.reset}` : text;
  }

  /** `✔ completed`, coloured. */
  status(status: string): string {
    return this.paint(styleOf(status).colour, `${styleOf(status).mark} ${clean(status)}`);
  }
}

function styleOf(status: string): { mark: string; colour: Colour } {
  return Object.hasOwn(STATUS, status) ? STATUS[status as RunStatus] : { mark: "?", colour: "dim" };
}

/** One table cell: its text and colour. */
interface Cell {
  text: string;
  colour?: Colour;
}

/** Code points, which is near enough the width of what we print. */
function width(text: string): number {
  return [...text].length;
}

function pad(text: string, size: number): string {
  return text + " ".repeat(Math.max(0, size - width(text)));
}

/** Lays out a table with a dim header; every cell's text must already be clean. */
function table(painter: Painter, header: string[], rows: Cell[][], indent = ""): string[] {
  const widths = header.map((h, c) => Math.max(width(h), ...rows.map((r) => width(r[c].text))));
  const line = (cells: Cell[]) =>
    indent + cells.map((cell, c) => {
      const last = c === cells.length - 1;
      return painter.paint(cell.colour, last ? cell.text : pad(cell.text, widths[c]));
    }).join("  ").trimEnd();
  return [
    painter.paint("dim", line(header.map((text) => ({ text })))),
    ...rows.map(line),
  ];
}

/** `HH:MM:SS.mmm` today, else `YYYY-MM-DD HH:MM:SS`, in local time. */
export function formatTime(ms: number, now = Date.now()): string {
  const date = new Date(ms);
  const two = (n: number) => String(n).padStart(2, "0");
  const clock = `${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
  if (date.toDateString() === new Date(now).toDateString()) {
    return `${clock}.${String(date.getMilliseconds()).padStart(3, "0")}`;
  }
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())} ${clock}`;
}

/** The table of `list`. */
export function renderList(
  runs: readonly RunSummary[],
  next: string | null,
  painter: Painter,
  now = Date.now(),
): string[] {
  if (runs.length === 0) return [painter.paint("dim", "No runs.")];
  const rows = runs.map((run): Cell[] => [
    { text: clean(run.key), colour: "bold" },
    { text: clean(run.definition) },
    {
      text: `${styleOf(run.status).mark} ${clean(run.status)}`,
      colour: styleOf(run.status).colour,
    },
    { text: `${run.done}/${run.total}` },
    { text: formatTime(run.createdAt, now), colour: "dim" },
    { text: formatTime(run.updatedAt, now), colour: "dim" },
  ]);
  const lines = table(painter, ["KEY", "WORKFLOW", "STATUS", "TASKS", "CREATED", "UPDATED"], rows);
  if (next !== null) {
    lines.push(painter.paint("dim", `More runs: add --after ${shellQuote(next)}`));
  }
  return lines;
}

function shellQuote(text: string): string {
  return /^[\w./:@%+=,-]+$/.test(text) ? text : `'${clean(text).replaceAll("'", "'\\''")}'`;
}

const BAR_WIDTH = 24;

/** The timeline of `show`: a heading, one row per task, and errors under their task. */
export function renderRun(run: RunView, painter: Painter, now = Date.now()): string[] {
  const end = run.status === "running" ? Math.max(now, run.updatedAt) : run.updatedAt;
  const span = Math.max(1, end - run.createdAt);
  const lines = [
    `${painter.paint("bold", `run ${clean(run.key)}`)}  ${painter.status(run.status)}  ${
      clean(run.definition.name)
    } v${run.definition.version}`,
    painter.paint(
      "dim",
      `created ${formatTime(run.createdAt, now)} · ${
        run.status === "running" ? "running for" : "took"
      } ${formatDuration(end - run.createdAt)} · ${run.done}/${run.total} tasks done`,
    ),
  ];
  const rows = run.tasks.map((task, i): Cell[] => {
    const style = styleOf(task.status);
    const live = task.status === "running" || task.status === "retrying";
    return [
      { text: String(i + 1), colour: "dim" },
      { text: clean(task.name), colour: "bold" },
      { text: task.side, colour: task.side === "server" ? "blue" : "magenta" },
      { text: `${style.mark} ${clean(task.status)}`, colour: style.colour },
      { text: String(task.attempts) },
      { text: task.startedAt ? formatTime(task.startedAt, now) : "", colour: "dim" },
      { text: durationOf(task, live, now) },
      { text: bar(task, run.createdAt, span, end, live), colour: style.colour },
      { text: live && task.progress ? progressText(task.progress) : "" },
    ];
  });
  const header = ["#", "TASK", "SIDE", "STATUS", "ATTEMPTS", "STARTED", "TIME", "TIMELINE", ""];
  const [head, ...body] = table(painter, header, rows, "  ");
  lines.push(head);
  run.tasks.forEach((task, i) => {
    lines.push(body[i]);
    if (task.error) {
      const old = task.status === "completed" || task.status === "skipped";
      const text = `${old ? "an earlier attempt failed: " : ""}${clean(task.error.code)}: ${
        clean(task.error.message)
      }`;
      lines.push(`     ${painter.paint(old ? "dim" : "red", `↳ ${text}`)}`);
    }
  });
  if (run.error) {
    const where = run.error.task ? ` in task ${clean(run.error.task)}` : "";
    lines.push(
      painter.paint(
        "red",
        `${run.status}${where}: ${clean(run.error.code)}: ${clean(run.error.message)}`,
      ),
    );
  }
  return lines;
}

function durationOf(task: TaskView, live: boolean, now: number): string {
  if (task.startedAt === undefined) return "";
  if (task.finishedAt !== undefined) return formatDuration(task.finishedAt - task.startedAt);
  return live ? `${formatDuration(Math.max(0, now - task.startedAt))}…` : "";
}

function progressText(progress: { fraction: number; note: string }): string {
  const percent = `${Math.round(progress.fraction * 100)}%`;
  return progress.note ? `${percent} ${clean(progress.note)}` : percent;
}

/** When a task ran, as a bar across the run's span: `   ████      `. */
function bar(task: TaskView, start: number, span: number, end: number, live: boolean): string {
  if (task.startedAt === undefined) return "·".padEnd(BAR_WIDTH);
  const finish = task.finishedAt ?? (live ? end : task.startedAt);
  const from = Math.min(BAR_WIDTH - 1, Math.floor((task.startedAt - start) / span * BAR_WIDTH));
  const to = Math.max(
    from + 1,
    Math.min(BAR_WIDTH, Math.ceil((finish - start) / span * BAR_WIDTH)),
  );
  return " ".repeat(Math.max(0, from)) + (live ? "▒" : "█").repeat(to - from) +
    " ".repeat(BAR_WIDTH - to);
}

/** One line for an event, for logs: an ISO time, the key, the event and its details. */
export function renderEvent(event: WorkflowEvent, painter: Painter): string {
  const parts = [
    painter.paint("dim", new Date(event.at).toISOString()),
    painter.paint("bold", clean(event.key)),
    painter.paint(eventColour(event), event.type),
  ];
  switch (event.type) {
    case "run.started":
      parts.push(clean(event.definition));
      break;
    case "run.failed":
      parts.push(
        painter.paint("red", `${clean(event.error.code)}: ${clean(event.error.message)}`),
      );
      if (event.error.task) parts.push(`(task ${clean(event.error.task)})`);
      break;
    case "run.cancelled":
      parts.push(clean(event.reason));
      break;
    case "remote.attached":
      parts.push(clean(event.peer));
      break;
    case "remote.detached":
      parts.push(clean(event.peer), clean(event.reason));
      break;
    case "task.progress":
      parts.push(clean(event.task), `attempt ${event.attempt}`, progressText(event));
      break;
    case "run.completed":
      break;
    case "task.started":
    case "task.completed":
    case "task.skipped":
    case "task.failed":
    case "task.retrying":
      parts.push(
        clean(event.task),
        painter.paint(event.side === "server" ? "blue" : "magenta", event.side),
        `attempt ${event.attempt}`,
      );
      if (event.type === "task.completed") parts.push(formatDuration(event.durationMs));
      if (event.type === "task.failed" || event.type === "task.retrying") {
        parts.push(
          painter.paint("red", `${clean(event.error.code)}: ${clean(event.error.message)}`),
        );
      }
      break;
    default:
      // Events this version does not know in detail (such as "message"): their plain fields.
      for (const [name, value] of Object.entries(event as Record<string, unknown>)) {
        if (name === "type" || name === "key" || name === "at") continue;
        if (["string", "number", "boolean"].includes(typeof value)) {
          parts.push(`${clean(name)}=${clean(String(value))}`);
        }
      }
  }
  return parts.join("  ");
}

function eventColour(event: WorkflowEvent): Colour | undefined {
  switch (event.type) {
    case "run.completed":
    case "task.completed":
    case "task.skipped":
      return "green";
    case "run.failed":
    case "task.failed":
      return "red";
    case "run.cancelled":
      return "magenta";
    case "task.retrying":
    case "remote.detached":
      return "yellow";
    case "run.started":
    case "task.started":
      return "cyan";
    default:
      return undefined;
  }
}
