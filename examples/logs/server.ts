/**
 * The server of the logs workflow.
 *
 *     deno run -A examples/logs/server.ts [--host 127.0.0.1] [--port 50052] [--solo]
 *
 * Prints the report of every run (see `server_tasks.ts`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { MemoryStore, serve } from "../../mod.ts";
import { logsServerTasks } from "./server_tasks.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "50052" },
    solo: { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log("usage: server.ts [--host 127.0.0.1] [--port 50052] [--solo]");
  Deno.exit(0);
}

const server = await serve({
  workflows: logsServerTasks,
  host: values.host,
  port: Number(values.port),
  solo: values.solo,
  store: new MemoryStore(),
  progress: false,
});
console.log(`server: listening on ${server.address}`);
Deno.addSignalListener("SIGINT", () => server.shutdown());
await server.finished;
Deno.exit(0);
