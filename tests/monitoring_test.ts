/**
 * The monitoring API of a server: listing runs with filters and paging, one run's record,
 * and the event stream with timestamps and attempt numbers.
 */
import assert from "node:assert/strict";
import { connect, MemoryLocalStore, serve, SQLiteStore, type WorkflowEvent } from "../mod.ts";
import { fragileRemote, fragileServer, relayRemote, relayServer } from "./_helpers/workflows.ts";

Deno.test("runs() filters and pages, run() has the timeline, events() carry time and attempt", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "workflow-monitoring-" });
  await using server = await serve({
    workflows: [relayServer, fragileServer],
    port: 0,
    store: new SQLiteStore({ path: `${dir}/runs.db`, durability: "normal" }),
    progress: false,
  });
  const events: WorkflowEvent[] = [];
  const collecting = (async () => {
    for await (const event of server.events()) events.push(event);
  })();
  const local = new MemoryLocalStore();
  const started = Date.now();
  for (const key of ["relay/a", "relay/b", "relay/c"]) {
    await connect({
      isolation: "none",
      address: server.address,
      key,
      tasks: relayRemote,
      local,
      progress: false,
    });
  }
  await assert.rejects(
    connect({
      isolation: "none",
      address: server.address,
      key: "fragile/x",
      tasks: fragileRemote("remote"),
      local,
      progress: false,
    }),
  );

  await t.step("list by status, by definition, by key prefix, and page through", async () => {
    assert.deepEqual((await server.runs({ status: "failed" })).map((r) => r.key), ["fragile/x"]);
    assert.deepEqual((await server.runs({ definition: "relay" })).map((r) => r.key), [
      "relay/a",
      "relay/b",
      "relay/c",
    ]);
    assert.deepEqual((await server.runs({ keyPrefix: "frag" })).map((r) => r.key), ["fragile/x"]);
    const page1 = await server.runs({ limit: 2 });
    const page2 = await server.runs({ limit: 2, after: page1.at(-1)!.key });
    assert.deepEqual([...page1, ...page2].map((r) => r.key), [
      "fragile/x",
      "relay/a",
      "relay/b",
      "relay/c",
    ]);
    const summary = page1[1];
    assert.equal(summary.status, "completed");
    assert.equal(summary.done, 5);
    assert.equal(summary.total, 5);
  });

  await t.step("one run's record: every task with side, status, attempts and times", async () => {
    const record = await server.run("relay/b");
    assert.ok(record);
    assert.deepEqual(
      record.tasks.map((task) => [task.name, task.side, task.status, task.attempts]),
      [
        ["r1", "remote", "completed", 1],
        ["s2", "server", "completed", 1],
        ["r3", "remote", "completed", 1],
        ["s4", "server", "completed", 1],
        ["r5", "remote", "completed", 1],
      ],
    );
    for (const task of record.tasks) {
      assert.ok(task.startedAt! >= started && task.finishedAt! >= task.startedAt!);
    }
    const failed = await server.run("fragile/x");
    assert.equal(failed?.error?.task, "finish");
    assert.match(failed?.error?.message ?? "", /broke on purpose/);
    assert.equal(await server.run("nothing/here"), undefined);
  });

  await t.step("events: timestamps, keys and attempt numbers, in order per run", async () => {
    await server.shutdown();
    await collecting;
    const ofB = events.filter((e) => e.key === "relay/b");
    assert.equal(ofB[0].type, "run.started");
    assert.equal(ofB.at(-1)!.type, "run.completed");
    for (let i = 1; i < ofB.length; i++) assert.ok(ofB[i].at >= ofB[i - 1].at);
    const completed = ofB.filter((e) => e.type === "task.completed");
    assert.deepEqual(completed.map((e) => "task" in e && [e.task, e.attempt]), [
      ["r1", 1],
      ["s2", 1],
      ["r3", 1],
      ["s4", 1],
      ["r5", 1],
    ]);
    assert.ok(events.some((e) => e.type === "run.failed" && e.key === "fragile/x"));
  });
  await Deno.remove(dir, { recursive: true });
});
