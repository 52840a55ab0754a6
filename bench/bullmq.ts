/**
 * The peer: the same sequential no-op steps through BullMQ and a local Redis, started here
 * (`redis-server --save "" --appendonly no`, so Redis persists nothing) and stopped after.
 *
 * @module
 */
import { Queue, QueueEvents, Worker } from "bullmq";
import { Redis } from "ioredis";
import { deferred, freePort, sleep, summarize, type Summary } from "./_stats.ts";

/** What the peer row reports. */
export type PeerResult =
  | {
    ok: true;
    /** Per step, waiting on the worker's own `completed` event (the fastest signal). */
    step: Summary;
    stepsPerS: number;
    /** Per step, waiting with `job.waitUntilFinished(queueEvents)`, as a producer would. */
    stepEvents: Summary;
    stepsPerSEvents: number;
    redisVersion: string;
  }
  | { ok: false; reason: string };

/** Starts `redis-server` on a free port; resolves once it answers PING. */
async function startRedis(): Promise<{ port: number; process: Deno.ChildProcess }> {
  const port = freePort();
  const process = new Deno.Command("redis-server", {
    args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return { port, process };
    } catch {
      if (Date.now() > deadline) {
        try {
          process.kill("SIGKILL");
        } catch { /* gone */ }
        await process.status;
        throw new Error(`redis-server did not listen on port ${port} within 5 s`);
      }
      await sleep(20);
    }
  }
}

/** Runs `steps` no-op jobs one after another (each added once the previous completed). */
export async function bullmqSteps(steps: number, warmup: number): Promise<PeerResult> {
  let redis: { port: number; process: Deno.ChildProcess };
  try {
    redis = await startRedis();
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "redis-server is not installed (apt-get install -y redis-server)"
      : `redis-server could not be started: ${(error as Error).message}`;
    return { ok: false, reason };
  }
  const connection = { host: "127.0.0.1", port: redis.port, maxRetriesPerRequest: null };
  const admin = new Redis(connection);
  const queue = new Queue("bench", { connection });
  const events = new QueueEvents("bench", { connection });
  let waiting: { id: string; done: () => void } | undefined;
  const worker = new Worker("bench", () => Promise.resolve(null), {
    connection,
    concurrency: 1,
  });
  worker.on("completed", (job) => {
    if (waiting && job.id === waiting.id) waiting.done();
  });
  worker.on("error", () => {});
  try {
    const info = await admin.info("server");
    const redisVersion = info.match(/redis_version:(\S+)/)?.[1] ?? "?";
    await worker.waitUntilReady();
    await events.waitUntilReady();
    const opts = { removeOnComplete: true, removeOnFail: true };
    // The fastest completion signal: the worker's own event, in this process.
    const samples: number[] = [];
    let t0 = 0;
    for (let i = 0; i < warmup + steps; i++) {
      if (i === warmup) t0 = performance.now();
      const started = performance.now();
      const done = deferred();
      const job = await queue.add("step", { i }, opts);
      waiting = { id: job.id!, done: () => done.resolve() };
      await done.promise;
      if (i >= warmup) samples.push(performance.now() - started);
    }
    const total = performance.now() - t0;
    // As a producer elsewhere would: QueueEvents (Redis streams).
    const eventSamples: number[] = [];
    let t1 = 0;
    for (let i = 0; i < warmup + steps; i++) {
      if (i === warmup) t1 = performance.now();
      const started = performance.now();
      const job = await queue.add("step", { i }, { removeOnFail: true });
      await job.waitUntilFinished(events, 10_000);
      if (i >= warmup) eventSamples.push(performance.now() - started);
    }
    const totalEvents = performance.now() - t1;
    return {
      ok: true,
      step: summarize(samples),
      stepsPerS: steps / (total / 1000),
      stepEvents: summarize(eventSamples),
      stepsPerSEvents: steps / (totalEvents / 1000),
      redisVersion,
    };
  } catch (error) {
    return { ok: false, reason: `BullMQ failed: ${(error as Error).message}` };
  } finally {
    await worker.close().catch(() => {});
    await events.close().catch(() => {});
    await queue.close().catch(() => {});
    await admin.quit().catch(() => {});
    try {
      redis.process.kill("SIGTERM");
    } catch { /* gone */ }
    await redis.process.status;
  }
}
