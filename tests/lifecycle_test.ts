/**
 * The task lifecycle on both sides: validate, run, rollback, timeout, retry with backoff, and
 * heartbeats, over a real gRPC connection.
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
  serve,
  serverTasks,
  WorkflowError,
  type WorkflowEvent,
} from "../mod.ts";

const quiet = { progress: false } as const;

/** Waits until `signal` aborts, then rejects with its reason. */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

/** Collects the events of one run until it ends. */
async function collect(
  events: AsyncIterable<WorkflowEvent>,
  key: string,
): Promise<WorkflowEvent[]> {
  const seen: WorkflowEvent[] = [];
  for await (const event of events) {
    if (event.key !== key) continue;
    seen.push(event);
    if (event.type === "run.completed" || event.type === "run.failed") break;
  }
  return seen;
}

Deno.test("server tasks: validate skips, rollback undoes, retry backs off, timeout fails", async (t) => {
  const calls: string[] = [];
  let flaky = 0;
  const flow = defineWorkflow("lifecycle", { version: 1 })
    .remote("begin", { returns: returns<{ mode: string }>() })
    .server("cached", { returns: returns<{ v: number }>() })
    .server("flaky", {
      returns: returns<{ tries: number }>(),
      retry: { maxAttempts: 3, initialDelay: 5, maxDelay: 20 },
    })
    .server("last", { timeout: 100 })
    .remote("end");
  const server = serverTasks(flow, {
    cached: {
      validate: () => ({ output: { v: 42 } }),
      run: () => {
        calls.push("cached.run");
        return { v: 0 };
      },
    },
    flaky: (_input, ctx) => {
      flaky++;
      if (ctx.attempt < 3) throw new Error(`flaky attempt ${ctx.attempt}`);
      return { tries: ctx.attempt };
    },
    last: {
      run: (input, ctx) => {
        if (input.begin.mode === "fail") throw new Error("last broke");
        if (input.begin.mode === "hang") return untilAborted(ctx.signal);
      },
      rollback: (_input, _ctx, error) => {
        calls.push(`last.rollback: ${(error as Error).message}`);
      },
    },
  });
  const remote = (mode: string) => remoteTasks(flow, { begin: () => ({ mode }), end: () => {} });
  await using srv = await serve({ workflows: server, port: 0, store: new MemoryStore(), ...quiet });
  const run = (key: string, mode: string) =>
    connect({
      isolation: "none",
      address: srv.address,
      key,
      tasks: remote(mode),
      local: new MemoryLocalStore(),
      ...quiet,
    });

  await t.step(
    "validate's output is used and run is skipped; a flaky task is retried",
    async () => {
      const events = collect(srv.events(), "lifecycle/ok");
      const outputs = await run("lifecycle/ok", "ok");
      assert.deepEqual(outputs.cached, { v: 42 });
      assert.deepEqual(outputs.flaky, { tries: 3 });
      assert.equal(flaky, 3);
      assert.ok(!calls.includes("cached.run"));
      const seen = await events;
      assert.ok(seen.some((e) => e.type === "task.skipped" && e.task === "cached"));
      const retries = seen.filter((e) => e.type === "task.retrying" && e.task === "flaky");
      assert.deepEqual(retries.map((e) => "attempt" in e && e.attempt), [1, 2]);
      const record = await srv.run("lifecycle/ok");
      assert.equal(record?.tasks[2].attempts, 3);
      assert.equal(record?.tasks[1].status, "skipped");
    },
  );

  await t.step("a failing run calls rollback and the failure reaches the remote", async () => {
    await assert.rejects(run("lifecycle/fail", "fail"), (error: unknown) => {
      assert.ok(error instanceof WorkflowError);
      assert.equal(error.code, ErrorCode.RunFailed);
      assert.match(error.message, /"last"/);
      assert.match(error.message, /last broke/);
      return true;
    });
    assert.ok(calls.includes("last.rollback: last broke"), calls.join("; "));
  });

  await t.step("a server task past its timeout is aborted and fails with TaskTimeout", async () => {
    await assert.rejects(run("lifecycle/hang", "hang"), /TaskTimeout.*timed out after 100 ms/);
    const record = await srv.run("lifecycle/hang");
    assert.equal(record?.status, "failed");
    assert.equal(record?.error?.code, ErrorCode.TaskTimeout);
    assert.equal(record?.error?.task, "last");
  });
});

Deno.test("remote tasks: a timed-out or silent attempt is cancelled and retried", async (t) => {
  const flow = defineWorkflow("watched", { version: 1 })
    .server("start")
    .remote("slow", {
      returns: returns<{ attempt: number }>(),
      timeout: 150,
      retry: { maxAttempts: 2, initialDelay: 1, maxDelay: 5 },
    })
    .remote("beating", {
      returns: returns<{ attempt: number }>(),
      heartbeat: 150,
      retry: { maxAttempts: 2, initialDelay: 1, maxDelay: 5 },
    });
  const aborted: string[] = [];
  const remote = remoteTasks(flow, {
    slow: async (_input, ctx) => {
      if (ctx.attempt === 1) {
        await untilAborted(ctx.signal).catch((error) => {
          aborted.push(`slow: ${error.message}`);
          throw error;
        });
      }
      return { attempt: ctx.attempt };
    },
    beating: async (_input, ctx) => {
      if (ctx.attempt === 1) {
        await untilAborted(ctx.signal).catch((error) => {
          aborted.push(`beating: ${error.message}`);
          throw error;
        });
      }
      // Beats for longer than the heartbeat allows between two beats.
      for (let i = 0; i < 6; i++) {
        ctx.heartbeat();
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return { attempt: ctx.attempt };
    },
  });
  await using srv = await serve({
    workflows: serverTasks(flow, { start: () => {} }),
    port: 0,
    store: new MemoryStore(),
    ...quiet,
  });
  await t.step("attempt 1 is cancelled on the remote, attempt 2 completes", async () => {
    const events = collect(srv.events(), "watched/1");
    const outputs = await connect({
      isolation: "none",
      address: srv.address,
      key: "watched/1",
      tasks: remote,
      local: new MemoryLocalStore(),
      ...quiet,
    });
    assert.deepEqual(outputs.slow, { attempt: 2 });
    assert.deepEqual(outputs.beating, { attempt: 2 });
    assert.equal(aborted.length, 2, aborted.join("; "));
    assert.match(aborted[0], /slow.*timed out after 150 ms/);
    assert.match(aborted[1], /beating.*sent no heartbeat after 150 ms/);
    const retries = (await events).filter((e) => e.type === "task.retrying");
    assert.deepEqual(
      retries.map((e) => "error" in e && e.error.code),
      [ErrorCode.TaskTimeout, ErrorCode.TaskTimeout],
    );
  });
});
