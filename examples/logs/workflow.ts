/**
 * A workflow that does real work on the remote's files under a narrow grant: its one
 * remote task reads the `*.log` files of one folder (`read: ["./logs"]`) and nothing else;
 * the server turns the summary into a report.
 *
 * @module
 */
import { defineWorkflow, returns } from "../../workflow/mod.ts";

/** What the remote learns from one log file. */
export interface LogFileSummary {
  file: string;
  bytes: number;
  lines: number;
  levels: Record<string, number>;
  /** The first few ERROR lines, as written. */
  errors: string[];
}

export const logsWorkflow = defineWorkflow("logs-summary", { version: 1 })
  .remote("summarise", {
    returns: returns<{ files: LogFileSummary[] }>(),
    permissions: { read: ["./logs"] },
    timeout: 30_000,
    description: "count the lines of each level in ./logs/*.log",
  })
  .server("report", { returns: returns<{ text: string }>() });
