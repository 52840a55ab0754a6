/** The server's task of the logs workflow: a plain-text report of the remote's summary. @module */
import { serverTasks } from "../../mod.ts";
import { logsWorkflow } from "./workflow.ts";

export const logsServerTasks = serverTasks(logsWorkflow, {
  report: (input, ctx) => {
    const { files } = input.summarise;
    const lines = [`${files.length} log file(s)`];
    for (const file of files) {
      const levels = Object.entries(file.levels).map(([level, n]) => `${level} ${n}`).join(", ");
      lines.push(`  ${file.file}: ${file.lines} lines, ${file.bytes} bytes (${levels})`);
      for (const error of file.errors) lines.push(`    ${error}`);
    }
    const text = lines.join("\n");
    console.log(`server: report of run "${ctx.key}"\n${text}`);
    return { text };
  },
});
