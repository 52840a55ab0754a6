/**
 * The server of the secret workflow.
 *
 *     deno run -A examples/secret/server.ts [--host 127.0.0.1] [--port 50051] [--solo]
 *       [--store .workflow/runs.db | --memory] [--step-delay ms] [--dashboard port]
 *
 * Runs are kept in an SQLite file (`--store`), so a server killed mid-run continues its
 * runs when it starts again on the same file.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { MemoryStore, serve, SQLiteStore } from "../../mod.ts";
import { pacing, secretServerTasks } from "./server_tasks.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "50051" },
    solo: { type: "boolean", default: false },
    store: { type: "string", default: ".workflow/runs.db" },
    memory: { type: "boolean", default: false },
    "step-delay": { type: "string", default: "0" },
    dashboard: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(
    "usage: server.ts [--host 127.0.0.1] [--port 50051] [--solo] [--store .workflow/runs.db | --memory] [--step-delay ms] [--dashboard port]",
  );
  Deno.exit(0);
}
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`server: --port must be a number from 0 to 65535, got "${values.port}"`);
  Deno.exit(2);
}

pacing.stepDelay = Number(values["step-delay"]);
if (!Number.isFinite(pacing.stepDelay) || pacing.stepDelay < 0) {
  console.error(`server: --step-delay must be a number of ms, got "${values["step-delay"]}"`);
  Deno.exit(2);
}

const server = await serve({
  workflows: secretServerTasks,
  host: values.host,
  port,
  solo: values.solo,
  store: values.memory ? new MemoryStore() : new SQLiteStore({ path: values.store }),
  ...(values.dashboard === undefined ? {} : { dashboard: { port: Number(values.dashboard) } }),
});
console.log(
  `server: listening on ${server.address}${values.solo ? " (solo: exits after one run)" : ""}`,
);
if (server.dashboardUrl) console.log(`server: dashboard at ${server.dashboardUrl}`);
Deno.addSignalListener("SIGINT", () => server.shutdown());
if (Deno.build.os !== "windows") Deno.addSignalListener("SIGTERM", () => server.shutdown());
await server.finished;
Deno.exit(0);
