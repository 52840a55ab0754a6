/**
 * Child process of the throughput benchmark: the server, alone in its process, on a SQLite
 * file (default durability).
 *
 * Usage: `deno run -A bench/_tp_server.ts <db path> <tasks per run>`; prints `port <n>`, and
 * shuts down on `quit`.
 *
 * @module
 */
import { serve } from "../mod.ts";
import { SQLiteStore } from "../server/sqlite_store.ts";
import { commands } from "./_child.ts";
import { alternating, BENCH_LIMITS } from "./_workflows.ts";

const [path, tasks] = Deno.args;
const store = new SQLiteStore({ path });
const server = await serve({
  workflows: alternating(Number(tasks)).server,
  store,
  port: 0,
  progress: false,
  limits: BENCH_LIMITS,
});
console.log(`port ${server.port}`);
for await (const command of commands()) if (command === "quit") break;
await server.shutdown({ grace: 2000 });
await store.close();
Deno.exit(0);
