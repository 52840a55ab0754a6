/**
 * Child process of the idle-remotes benchmark: a server that holds idle remotes, alone in its
 * process so that its RSS counts no client memory.
 *
 * Usage: `deno run -A --v8-flags=--expose-gc bench/_idle_server.ts <ours|raw> <db path>`.
 * Prints `port <n>`; then answers `rss` with `rss <KiB>` (after a full GC) and `quit`.
 *
 * @module
 */
import type * as grpc from "@grpc/grpc-js";
import { serve } from "../mod.ts";
import { SQLiteStore } from "../server/sqlite_store.ts";
import { frameSizes, rawServer } from "./baseline.ts";
import { commands } from "./_child.ts";
import { rssKb, sleep } from "./_stats.ts";
import { BENCH_LIMITS, hold } from "./_workflows.ts";

const [mode, path] = Deno.args;
let port: number;
let stop: () => Promise<void>;
if (mode === "ours") {
  const store = new SQLiteStore({ path });
  const server = await serve({
    workflows: hold().server,
    store,
    port: 0,
    progress: false,
    limits: BENCH_LIMITS,
  });
  port = server.port;
  stop = async () => {
    await server.shutdown({ grace: 0 });
    await store.close();
  };
} else {
  // Raw grpc-js: each stream gets one dispatch-sized answer to its first message, and is held.
  const reply = new Uint8Array(frameSizes().dispatch).fill(7);
  const held = new Set<grpc.ServerDuplexStream<Uint8Array, Uint8Array>>();
  const raw = await rawServer((call) => {
    held.add(call);
    call.once("data", () => call.write(reply));
    call.on("error", () => {});
    call.on("close", () => held.delete(call));
  });
  port = Number(raw.address.split(":").at(-1));
  stop = () => raw.close();
}
console.log(`port ${port}`);

const gc = (globalThis as { gc?: () => void }).gc;
for await (const command of commands()) {
  if (command === "rss") {
    for (let i = 0; i < 3; i++) {
      gc?.();
      await sleep(50);
    }
    console.log(`rss ${rssKb()}`);
  } else if (command === "quit") break;
}
await stop();
Deno.exit(0);
