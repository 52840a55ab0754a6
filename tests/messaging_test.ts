/**
 * Live messages between the sides during a run, configuration pushes, ordering, and
 * cancellation, over a real gRPC connection.
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
const BURST = 1000;

const chat = defineWorkflow("chat", { version: 1 })
  .message("ask", { from: "remote", value: returns<{ q: string }>(), reply: returns<string>() })
  .message("probe", {
    from: "server",
    value: returns<{ n: number }>(),
    reply: returns<{ twice: number }>(),
  })
  .message("config", { from: "server", value: returns<{ level: number }>() })
  .message("tick", { from: "remote", value: returns<{ i: number; at: bigint }>() })
  .remote("talk", { returns: returns<{ answer: string; level: number }>() })
  .server("ask-remote", { returns: returns<{ twice: number }>() })
  .remote("burst", { returns: returns<{ sent: number }>() });

/** Resolves with the first event that matches. */
async function first(
  events: AsyncIterable<WorkflowEvent>,
  match: (event: WorkflowEvent) => boolean,
): Promise<WorkflowEvent> {
  for await (const event of events) if (match(event)) return event;
  throw new Error("the event stream ended");
}

Deno.test("live messages: request/reply both ways, a config push, and 1,000 in order", async (t) => {
  const ticks: number[] = [];
  const server = serverTasks(chat, {
    "ask-remote": async (_input, ctx) => await ctx.messages.request("probe", { n: 21 }),
  }, {
    on: {
      ask: ({ q }) => q.toUpperCase(),
      tick: ({ i }) => {
        ticks.push(i);
      },
    },
  });
  const remote = remoteTasks(chat, {
    talk: async (_input, ctx) => {
      const answer = await ctx.messages.request("ask", { q: "who is there?" });
      const config = ctx.messages.receive("config");
      ctx.messages.send("tick", { i: 0, at: 0n }); // "I am listening"
      return { answer, level: (await config).level };
    },
    burst: (_input, ctx) => {
      for (let i = 1; i <= BURST; i++) ctx.messages.send("tick", { i, at: BigInt(i) ** 20n });
      return { sent: BURST };
    },
  }, { on: { probe: ({ n }) => ({ twice: n * 2 }) } });
  await using srv = await serve({ workflows: server, port: 0, store: new MemoryStore(), ...quiet });
  const listening = first(
    srv.events(),
    (e) => e.type === "message" && e.topic === "tick" && e.key === "chat/1",
  );
  const run = connect({
    isolation: "none",
    address: srv.address,
    key: "chat/1",
    tasks: remote,
    local: new MemoryLocalStore(),
    ...quiet,
  });
  await t.step("the remote task asks the server and gets its handler's answer", async () => {
    await listening;
  });
  let outputs!: Awaited<typeof run>;
  await t.step("a running remote task sees a configuration pushed by the server", async () => {
    srv.send("chat/1", "config", { level: 7 });
    outputs = await run;
    assert.deepEqual(outputs.talk, { answer: "WHO IS THERE?", level: 7 });
  });
  await t.step("a server task asks the remote and gets its handler's answer", () => {
    assert.deepEqual(outputs["ask-remote"], { twice: 42 });
  });
  await t.step("1,000 one-way messages arrive in order, each once", () => {
    assert.deepEqual(ticks, Array.from({ length: BURST + 1 }, (_, i) => i));
  });
  await t.step("a message to a run with no remote attached fails clearly", () => {
    assert.throws(() => srv.send("chat/1", "config", { level: 1 }), (error: unknown) => {
      assert.ok(error instanceof WorkflowError);
      assert.equal(error.code, ErrorCode.Unavailable);
      assert.match(error.message, /no remote is attached/);
      return true;
    });
  });
  await t.step("a topic the server does not send is refused at the sender", () => {
    assert.throws(
      () => srv.send("chat/1", "tick", { i: 1, at: 1n }),
      /no remote is attached|sent by the remote/,
    );
  });
});

Deno.test("cancelling a run whose remote task ignores the signal", async () => {
  const stubborn = defineWorkflow("stubborn", { version: 1 })
    .server("prepare")
    .remote("ignore", { returns: returns<string>() })
    .server("never");
  let release!: () => void;
  const ignored = new Promise<void>((resolve) => release = resolve);
  const rolledBack: string[] = [];
  let neverRan = true;
  await using srv = await serve({
    workflows: serverTasks(stubborn, { prepare: () => {}, never: () => void (neverRan = false) }),
    port: 0,
    store: new MemoryStore(),
    ...quiet,
  });
  const started = first(srv.events(), (e) => e.type === "task.started" && e.task === "ignore");
  const run = connect({
    isolation: "none",
    address: srv.address,
    key: "stubborn/1",
    tasks: remoteTasks(stubborn, {
      ignore: {
        run: async () => {
          await ignored; // never looks at ctx.signal
          return "too late";
        },
        rollback: (_input, ctx, error) => {
          rolledBack.push(`${ctx.task}: ${(error as Error).message}`);
        },
      },
    }),
    local: new MemoryLocalStore(),
    ...quiet,
  });
  run.catch(() => {}); // checked below
  await started;
  assert.equal(await srv.cancel("stubborn/1", "an operator said stop"), true);
  await assert.rejects(run, (error: unknown) => {
    assert.ok(error instanceof WorkflowError);
    assert.equal(error.code, ErrorCode.Cancelled);
    assert.match(error.message, /an operator said stop/);
    return true;
  });
  release();
  const record = await srv.run("stubborn/1");
  assert.equal(record?.status, "cancelled");
  assert.equal(record?.tasks[1].status, "cancelled");
  assert.ok(neverRan);
  assert.equal(rolledBack.length, 1);
  assert.match(rolledBack[0], /ignore: .*an operator said stop/);
  assert.equal(await srv.cancel("stubborn/1"), false, "a finished run cannot be cancelled");
});
