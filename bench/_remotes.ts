/**
 * Child process of the throughput benchmark: `count` lanes at once, each running `runs` runs
 * of the alternating no-op workflow one after another as their remote, and one JSON line when
 * all finished.
 *
 * Usage: `deno run -A bench/_remotes.ts <address> <count> <tasks> <key prefix> <runs>`
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import { connect, MemoryLocalStore } from "../mod.ts";
import { clientTransport } from "../client/credentials.ts";
import { alternating } from "./_workflows.ts";

const [address, countText, tasksText, prefix, runsText] = Deno.args;
const count = Number(countText);
const runsPerLane = Number(runsText ?? 1);
const flow = alternating(Number(tasksText));
// Every connect() makes its own grpc-js client, and they share one connection (grpc-js's
// subchannel pool). This client, made with the same options, holds that connection open for
// the whole process, so it never closes between runs: a connection that a client closes
// (an HTTP/2 GOAWAY) can crash a Deno 2.9 server (denoland/deno#36788). The process exits
// without closing it.
const transport = clientTransport(address, {});
const holder = new grpc.Client(address, transport.credentials, transport.options);
await new Promise<void>((resolve, reject) =>
  holder.waitForReady(Date.now() + 30_000, (error) => error ? reject(error) : resolve())
);

const runOne = (key: string) =>
  connect({
    address,
    key,
    tasks: flow.remote,
    progress: false,
    local: new MemoryLocalStore(),
    isolation: "none",
    connectTimeout: 30_000,
  });
// Warm up this process (and the server) with a few runs that are not timed.
await Promise.all(
  Array.from({ length: Math.min(count, 20) }, (_, i) => runOne(`${prefix}-warm/${i}`)),
);
const t0 = performance.now();
const results = await Promise.allSettled(
  Array.from({ length: count }, async (_, lane) => {
    for (let i = 0; i < runsPerLane; i++) await runOne(`${prefix}/${lane}/${i}`);
  }),
);
const ms = performance.now() - t0;
const failed = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
console.log(JSON.stringify({
  ms,
  ok: count - failed.length,
  runs: count * runsPerLane,
  error: failed[0] ? String(failed[0].reason?.message ?? failed[0].reason) : undefined,
}));
Deno.exit(0);
