/**
 * Resume rules that need no process to die: a persisted run of another definition version
 * is never touched, and a remote whose call breaks reconnects by itself.
 */
import assert from "node:assert/strict";
import {
  connect,
  defineWorkflow,
  ErrorCode,
  MemoryLocalStore,
  MemoryStore,
  remoteTasks,
  returns,
  type RunRecord,
  serve,
  serverTasks,
  WorkflowError,
} from "../mod.ts";
import { relay, relayRemote, relayServer } from "./_helpers/workflows.ts";

const quiet = { progress: false } as const;

Deno.test("a persisted run of another definition version is refused and left untouched", async () => {
  const store = new MemoryStore();
  const record: RunRecord = {
    schema: 1,
    key: "relay/old",
    definition: { name: "relay", version: 1, fingerprint: relay.fingerprint },
    status: "running",
    tasks: relay.tasks.map((task) => ({
      name: task.name,
      side: task.side,
      status: task.index === 0 ? "completed" : "pending",
      attempts: task.index === 0 ? 1 : 0,
    })),
    outputs: {},
    local: {},
    createdAt: 1,
    updatedAt: 1,
    version: 3,
  };
  // Saved as version 3 (versions 1 and 2 first, as compare-and-set requires).
  await store.save({ ...record, version: 1 });
  await store.save({ ...record, version: 2 });
  await store.save(record);

  const relay2 = defineWorkflow("relay", { version: 2 })
    .remote("r1", { returns: returns<{ n: number }>() })
    .server("s2", { returns: returns<{ n: number }>() })
    .remote("r3", { returns: returns<{ n: number }>() })
    .server("s4", { returns: returns<{ n: number }>() })
    .remote("r5", { returns: returns<{ n: number; text: string }>() });
  const server2 = serverTasks(relay2, {
    s2: (input) => ({ n: input.r1.n + 1 }),
    s4: (input) => ({ n: input.r3.n + 1 }),
  });
  const remote2 = remoteTasks(relay2, {
    r1: () => ({ n: 1 }),
    r3: (input) => ({ n: input.s2.n + 1 }),
    r5: (input) => ({ n: input.s4.n + 1, text: "v2" }),
  });
  await using server = await serve({ workflows: server2, port: 0, store, ...quiet });
  await assert.rejects(
    connect({
      isolation: "none",
      address: server.address,
      key: "relay/old",
      tasks: remote2,
      local: new MemoryLocalStore(),
      ...quiet,
    }),
    (error: unknown) => {
      assert.ok(error instanceof WorkflowError);
      assert.equal(error.code, ErrorCode.DefinitionMismatch);
      assert.match(error.message, /version 1/);
      assert.match(error.message, /version 2/);
      return true;
    },
  );
  const after = await store.load("relay/old");
  assert.equal(after?.version, 3, "the old run was not written");
  assert.equal(after?.status, "running");
});

Deno.test("a remote reconnects by itself when the server restarts, and the run completes", async () => {
  const store = new MemoryStore();
  let gate!: () => void;
  const opened = new Promise<void>((resolve) => gate = resolve);
  let release!: () => void;
  const held = new Promise<void>((resolve) => release = resolve);
  // s2 holds the first time, until the first server has gone.
  let calls = 0;
  const holding = serverTasks(relay, {
    s2: async (input, ctx) => {
      if (++calls === 1) {
        gate();
        await Promise.race([
          held,
          new Promise((_, reject) =>
            ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))
          ),
        ]);
      }
      return { n: input.r1.n + 1 };
    },
    s4: (input) => ({ n: input.r3.n + 1 }),
  });
  const first = await serve({ workflows: holding, port: 0, store, ...quiet, shutdownGrace: 0 });
  const port = first.port;
  const lines: string[] = [];
  const outputs = connect({
    isolation: "none",
    address: first.address,
    key: "relay/restart",
    tasks: relayRemote,
    local: new MemoryLocalStore(),
    reconnect: { initialDelay: 20, maxDelay: 200, giveUpAfter: 20_000 },
    progress: (line) => lines.push(line),
  });
  await opened;
  await first.shutdown({ grace: 0 });
  release();
  await using second = await serve({ workflows: relayServer, port, store, ...quiet });
  const result = await outputs;
  assert.equal(result.r5.n, 5);
  assert.ok(lines.some((line) => line.includes("reconnecting")), lines.join("\n"));
  const record = await second.run("relay/restart");
  assert.equal(record?.status, "completed");
  assert.equal(record?.tasks[1].attempts, 2, "s2 was interrupted and ran again as attempt 2");
});

Deno.test("reconnect: false gives up at the first break", async () => {
  const store = new MemoryStore();
  let gate!: () => void;
  const opened = new Promise<void>((resolve) => gate = resolve);
  const holding = serverTasks(relay, {
    s2: (_input, ctx) =>
      new Promise((_, reject) => {
        gate();
        ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason));
      }),
    s4: (input) => ({ n: input.r3.n + 1 }),
  });
  const server = await serve({ workflows: holding, port: 0, store, ...quiet, shutdownGrace: 0 });
  const outputs = connect({
    isolation: "none",
    address: server.address,
    key: "relay/no-reconnect",
    tasks: relayRemote,
    local: new MemoryLocalStore(),
    reconnect: false,
    ...quiet,
  });
  outputs.catch(() => {}); // checked below
  await opened;
  await server.shutdown({ grace: 0 });
  await assert.rejects(outputs, (error: unknown) => {
    assert.ok(error instanceof WorkflowError);
    assert.ok(
      error.code === ErrorCode.ShuttingDown || error.code === ErrorCode.Unavailable,
      error.code,
    );
    return true;
  });
});

Deno.test("a retry's backoff survives a restart of the server", async () => {
  const store = new MemoryStore();
  const flow = defineWorkflow("backoff", { version: 1 })
    .remote("r")
    .server("s", { retry: { maxAttempts: 2, initialDelay: 400, maxDelay: 400 } });
  const starts: number[] = [];
  let failedAt = 0;
  const tasks = serverTasks(flow, {
    s: (_input, ctx) => {
      starts.push(Date.now());
      if (ctx.attempt === 1) {
        failedAt = Date.now();
        throw new Error("fails once");
      }
    },
  });
  const retrying = Promise.withResolvers<void>();
  const first = await serve({ workflows: tasks, port: 0, store, ...quiet });
  (async () => {
    for await (const event of first.events()) {
      if (event.type === "task.retrying") return retrying.resolve();
    }
  })();
  const remote = connect({
    address: first.address,
    key: "backoff/1",
    tasks: remoteTasks(flow, { r: () => {} }),
    local: new MemoryLocalStore(),
    isolation: "none",
    reconnect: { initialDelay: 20, maxDelay: 100, giveUpAfter: 20_000 },
    ...quiet,
  });
  await retrying.promise;
  await first.shutdown({ grace: 0 });
  await using second = await serve({ workflows: tasks, port: first.port, store, ...quiet });
  await remote;
  assert.equal(starts.length, 2);
  // Full jitter keeps at least half the delay: 200 ms of the 400.
  assert.ok(starts[1] - failedAt >= 190, `retried ${starts[1] - failedAt} ms after the failure`);
  assert.equal((await second.run("backoff/1"))?.status, "completed");
});

Deno.test("two servers on one store: the one holding a run's lease keeps it", async () => {
  const store = new MemoryStore();
  const flow = defineWorkflow("leased", { version: 1 }).remote("r").server("s").remote("t");
  let starts = 0;
  let release!: () => void;
  const held = new Promise<void>((resolve) => release = resolve);
  const running = Promise.withResolvers<void>();
  const tasks = serverTasks(flow, {
    s: async () => {
      starts++;
      running.resolve();
      await held;
    },
  });
  const remote = remoteTasks(flow, { r: () => {}, t: () => {} });
  await using a = await serve({ workflows: tasks, port: 0, store, serverId: "a", ...quiet });
  const run = connect({
    address: a.address,
    key: "leased/1",
    tasks: remote,
    local: new MemoryLocalStore(),
    isolation: "none",
    ...quiet,
  });
  await running.promise;
  // B finds the unfinished run in the store on start, and leaves it to A.
  await using b = await serve({ workflows: tasks, port: 0, store, serverId: "b", ...quiet });
  assert.equal(starts, 1, "B did not start the task A is running");
  await assert.rejects(
    connect({
      address: b.address,
      key: "leased/1",
      tasks: remote,
      local: new MemoryLocalStore(),
      isolation: "none",
      reconnect: false,
      ...quiet,
    }),
    (error: unknown) => {
      assert.ok(error instanceof WorkflowError);
      assert.equal(error.code, ErrorCode.RunBusy);
      assert.match(error.message, /served by another server \(a\)/);
      return true;
    },
  );
  release();
  await run;
  assert.equal(starts, 1);
  assert.equal((await a.run("leased/1"))?.status, "completed");
});
