/**
 * The server's console view: a line per task change and a table per finished run.
 *
 * @module
 */
import type { ConsolePrinter } from "../workflow/console.ts";
import type { RunRecord, WorkflowEvent } from "../workflow/state.ts";

/**
 * Prints `events` until they end.
 *
 * @param events The server's events.
 * @param load Looks a run up, for its task list and final table.
 * @param printer Where to print.
 */
export async function reportProgress(
  events: AsyncIterable<WorkflowEvent>,
  load: (key: string) => Promise<RunRecord | undefined>,
  printer: ConsolePrinter,
): Promise<void> {
  for await (const event of events) {
    try {
      await print(event, load, printer);
    } catch (error) {
      console.error("workflow server: cannot print progress:", error);
    }
  }
}

async function print(
  event: WorkflowEvent,
  load: (key: string) => Promise<RunRecord | undefined>,
  printer: ConsolePrinter,
): Promise<void> {
  switch (event.type) {
    case "run.started":
      printer.line(event.key, `run started (${event.definition})`);
      return;
    case "remote.attached":
      printer.line(event.key, `remote attached (${event.peer})`, "dim");
      return;
    case "remote.detached":
      printer.line(event.key, `remote detached: ${event.reason}`, "yellow");
      return;
    case "run.completed":
    case "run.failed":
    case "run.cancelled": {
      const record = await load(event.key);
      if (!record) return;
      printer.table(
        event.key,
        record.status,
        record.tasks.map((task) => ({
          ...task,
          durationMs: task.finishedAt && task.startedAt
            ? task.finishedAt - task.startedAt
            : undefined,
        })),
      );
      return;
    }
    case "task.progress": {
      const record = await load(event.key);
      const index = record?.tasks.findIndex((task) => task.name === event.task) ?? -1;
      if (!record || index < 0) return;
      printer.progress(
        event.key,
        { index, name: event.task, side: record.tasks[index].side },
        record.tasks.length,
        event.fraction,
        event.note,
      );
      return;
    }
    case "message":
      return;
  }
  const record = await load(event.key);
  if (!record) return;
  const index = record.tasks.findIndex((task) => task.name === event.task);
  const status = {
    "task.started": "running",
    "task.completed": "completed",
    "task.skipped": "skipped",
    "task.failed": "failed",
    "task.retrying": "retrying",
  } as const;
  printer.task(
    event.key,
    { index, name: event.task, side: record.tasks[index].side },
    record.tasks.length,
    status[event.type],
    {
      attempt: event.attempt,
      durationMs: "durationMs" in event ? event.durationMs : undefined,
      error: "error" in event ? event.error : undefined,
    },
  );
}
