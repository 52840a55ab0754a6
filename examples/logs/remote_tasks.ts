/**
 * The remote's task of the logs workflow. It runs in an isolate that may read `./logs`
 * (relative to the client's working folder) and nothing else: no other file, no network, no
 * environment, no subprocess.
 *
 * @module
 */
import { remoteTasks } from "../../workflow/mod.ts";
import { type LogFileSummary, logsWorkflow } from "./workflow.ts";

const LEVEL = /\b(TRACE|DEBUG|INFO|WARN|ERROR|FATAL)\b/;

export const logsRemoteTasks = remoteTasks(logsWorkflow, {
  summarise: async (_input, ctx) => {
    const names: string[] = [];
    for await (const entry of Deno.readDir("./logs")) {
      if (entry.isFile && entry.name.endsWith(".log")) names.push(entry.name);
    }
    names.sort();
    const files: LogFileSummary[] = [];
    for (const [i, name] of names.entries()) {
      ctx.signal.throwIfAborted();
      const text = await Deno.readTextFile(`./logs/${name}`);
      const lines = text.split("\n").filter((line) => line.trim() !== "");
      const levels: Record<string, number> = {};
      const errors: string[] = [];
      for (const line of lines) {
        const level = line.match(LEVEL)?.[1] ?? "OTHER";
        levels[level] = (levels[level] ?? 0) + 1;
        if ((level === "ERROR" || level === "FATAL") && errors.length < 5) errors.push(line);
      }
      files.push({
        file: name,
        bytes: new TextEncoder().encode(text).byteLength,
        lines: lines.length,
        levels,
        errors,
      });
      ctx.progress((i + 1) / names.length, name);
    }
    return { files };
  },
}, { module: import.meta.url });
