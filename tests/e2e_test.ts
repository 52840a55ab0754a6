/**
 * End-to-end runs in one process, over a real gRPC connection on loopback.
 */
import assert from "node:assert/strict";
import { connect, ErrorCode, MemoryLocalStore, MemoryStore, serve, WorkflowError } from "../mod.ts";
import { encodePayload } from "../proto/payload.ts";
import { secretServerTasks } from "../examples/secret/server_tasks.ts";
import { secretRemoteTasks } from "../examples/secret/remote_tasks.ts";
import {
  fragileRemote,
  fragileServer,
  relay,
  relayRemote,
  relayServer,
} from "./_helpers/workflows.ts";
import { hello, rawCall } from "./_helpers/raw_call.ts";
import { defineWorkflow, remoteTasks, returns, serverTasks } from "../mod.ts";
import { Status } from "../proto/status.ts";

const quiet = { progress: false } as const;

async function rejects(promise: Promise<unknown>, code: string, ...fragments: string[]) {
  const error = await promise.then(
    () => assert.fail(`expected a ${code} error`),
    (e) => e,
  );
  assert.ok(error instanceof WorkflowError, `expected a WorkflowError, got ${error}`);
  assert.equal(error.code, code, error.message);
  for (const fragment of fragments) {
    assert.match(error.message, new RegExp(RegExp.escape(fragment)));
  }
  return error as WorkflowError;
}

Deno.test("connect() runs the secret workflow against serve() and both sides agree", async (t) => {
  await using server = await serve({
    store: new MemoryStore(),
    workflows: secretServerTasks,
    port: 0,
    ...quiet,
  });

  await t.step("one run completes with matching fingerprints", async () => {
    const outputs = await connect({
      local: new MemoryLocalStore(),
      address: server.address,
      key: "dh/alice",
      tasks: secretRemoteTasks,
      ...quiet,
    });
    assert.equal(outputs["remote-verify"].agreed, true);
    assert.equal(outputs["remote-verify"].fingerprint, outputs["server-secret"].fingerprint);
    assert.equal(typeof outputs["remote-public"].gx, "bigint");
    const record = await server.run("dh/alice");
    assert.equal(record?.status, "completed");
    assert.deepEqual(
      record?.tasks.map((t) => [t.status, t.attempts]),
      Array(5).fill(["completed", 1]),
    );
  });

  await t.step("neither exponent nor secret crosses the wire", async () => {
    const record = (await server.run("dh/alice"))!;
    assert.deepEqual(Object.keys(record.local), ["y"]);
    for (const name of Object.keys(record.outputs)) {
      assert.ok(
        ["remote-public", "server-public", "remote-secret", "server-secret", "remote-verify"]
          .includes(name),
      );
    }
  });

  await t.step("ten runs at once all complete", async () => {
    const runs = Array.from(
      { length: 10 },
      (_, i) =>
        connect({
          local: new MemoryLocalStore(),
          address: server.address,
          key: `dh/many-${i}`,
          tasks: secretRemoteTasks,
          ...quiet,
        }),
    );
    const results = await Promise.all(runs);
    assert.ok(results.every((r) => r["remote-verify"].agreed));
  });

  await t.step("a completed run answers a new remote with its outputs at once", async () => {
    const outputs = await connect({
      local: new MemoryLocalStore(),
      address: server.address,
      key: "dh/alice",
      tasks: secretRemoteTasks,
      ...quiet,
    });
    assert.equal(outputs["remote-verify"].agreed, true);
  });
});

Deno.test("serve() prints a progress line per task and a table per run", async () => {
  const lines: string[] = [];
  const server = await serve({
    store: new MemoryStore(),
    workflows: relayServer,
    port: 0,
    progress: (line) => lines.push(line),
  });
  const outputs = await connect({
    local: new MemoryLocalStore(),
    isolation: "none",
    address: server.address,
    key: "print/1",
    tasks: relayRemote,
    ...quiet,
  });
  assert.equal(outputs.r5.n, 5);
  await server.shutdown();
  const text = lines.join("\n");
  for (const task of ["r1", "s2", "r3", "s4", "r5"]) {
    assert.match(text, new RegExp(`${task}  ✔ completed`));
  }
  assert.ok(text.includes("run print/1  ✔ completed"), text);
  assert.ok(!text.includes("\u001b["), "no colour when the output is not a terminal");
});

Deno.test("connect() to an address with no server fails in bounded time, naming the address", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const started = performance.now();
  await rejects(
    connect({
      local: new MemoryLocalStore(),
      isolation: "none",
      address: `127.0.0.1:${port}`,
      key: "nobody/1",
      tasks: relayRemote,
      connectTimeout: 1500,
      ...quiet,
    }),
    ErrorCode.Unavailable,
    `127.0.0.1:${port}`,
    "within 1500 ms",
  );
  assert.ok(performance.now() - started < 5000);
});

Deno.test("serve() refuses bad remotes and keeps serving the others", async (t) => {
  await using server = await serve({
    store: new MemoryStore(),
    workflows: [relayServer, fragileServer],
    port: 0,
    ...quiet,
  });
  const address = server.address;

  await t.step("an unknown workflow is named in the error", async () => {
    const stranger = defineWorkflow("stranger", { version: 1 }).remote("only");
    await rejects(
      connect({
        isolation: "none",
        address,
        key: "x/1",
        tasks: remoteTasks(stranger, { only: () => {} }),
        ...quiet,
      }),
      ErrorCode.UnknownWorkflow,
      `"stranger"`,
      `"relay"`,
    );
  });

  await t.step("a definition mismatch names the first difference", async () => {
    const older = defineWorkflow("relay", { version: 1 })
      .remote("r1", { returns: returns<{ n: number }>() })
      .server("s2")
      .remote("r3-renamed")
      .server("s4")
      .remote("r5");
    const tasks = remoteTasks(older, {
      r1: () => ({ n: 1 }),
      "r3-renamed": () => {},
      r5: () => {},
    });
    await rejects(
      connect({
        local: new MemoryLocalStore(),
        isolation: "none",
        address,
        key: "x/2",
        tasks,
        ...quiet,
      }),
      ErrorCode.DefinitionMismatch,
      `task 3 is "r3-renamed" instead of "r3"`,
    );
    const newer = defineWorkflow("relay", { version: 2 }).remote("r1");
    await rejects(
      connect({
        isolation: "none",
        address,
        key: "x/3",
        tasks: remoteTasks(newer, { r1: () => {} }),
        ...quiet,
      }),
      ErrorCode.DefinitionMismatch,
      "version 2 instead of 1",
    );
  });

  await t.step(
    "a remote task that throws fails the run; both sides see task and text",
    async () => {
      const error = await rejects(
        connect({
          local: new MemoryLocalStore(),
          isolation: "none",
          address,
          key: "fail/remote",
          tasks: fragileRemote("remote"),
          ...quiet,
        }),
        ErrorCode.RunFailed,
        `"finish"`,
        "the remote task broke on purpose",
      );
      assert.equal(error.task, "finish");
      const record = await server.run("fail/remote");
      assert.equal(record?.status, "failed");
      assert.equal(record?.error?.task, "finish");
      assert.match(record!.error!.message, /the remote task broke on purpose/);
    },
  );

  await t.step(
    "a server task that throws fails the run; both sides see task and text",
    async () => {
      await rejects(
        connect({
          local: new MemoryLocalStore(),
          isolation: "none",
          address,
          key: "fail/server",
          tasks: fragileRemote("server"),
          ...quiet,
        }),
        ErrorCode.RunFailed,
        `"check"`,
        "the server task broke on purpose",
      );
      const record = await server.run("fail/server");
      assert.equal(record?.tasks[1].status, "failed");
      assert.match(record!.tasks[1].error!.message, /the server task broke on purpose/);
    },
  );

  await t.step("the server still serves good runs", async () => {
    const outputs = await connect({
      local: new MemoryLocalStore(),
      isolation: "none",
      address,
      key: "good/1",
      tasks: relayRemote,
      ...quiet,
    });
    assert.equal(outputs.r5.n, 5);
    const ok = await connect({
      local: new MemoryLocalStore(),
      isolation: "none",
      address,
      key: "good/2",
      tasks: fragileRemote("none"),
      ...quiet,
    });
    assert.deepEqual(ok.check, { ok: true });
  });
});

Deno.test("the server rejects out-of-order frames without corrupting the run", async (t) => {
  await using server = await serve({
    workflows: relayServer,
    port: 0,
    store: new MemoryStore(),
    ...quiet,
  });
  const address = server.address;

  await t.step("a result before hello ends the call with INVALID_ARGUMENT", async () => {
    const call = rawCall(address);
    call.send({
      kind: "result",
      result: { task: "r1", attempt: 1, output: encodePayload({ n: 1 }, "output") },
    });
    const status = await call.status;
    assert.equal(status.code, Status.INVALID_ARGUMENT);
    assert.match(status.details, /first frame of a call must be a hello/);
  });

  await t.step(
    "a result for a task that is not in flight is rejected; the run is intact",
    async () => {
      const call = rawCall(address);
      call.send(hello(relay, "order/1"));
      await call.next("welcome");
      const dispatch = await call.next("dispatch");
      assert.equal(dispatch.dispatch.task, "r1");
      call.send({
        kind: "result",
        result: { task: "r3", attempt: 1, output: encodePayload({ n: 3 }, "output") },
      });
      const status = await call.status;
      assert.equal(status.code, Status.INVALID_ARGUMENT);
      assert.match(
        status.details,
        /task "r3" attempt 1 of run "order\/1" rejected: "r1" attempt 1 is in flight/,
      );
      const record = await server.run("order/1");
      assert.equal(record?.status, "running");
      assert.deepEqual(record?.outputs, {});
      assert.equal(record?.tasks[2].attempts, 0);
      // A well-behaved remote then finishes the run; r1 runs again as attempt 2.
      const outputs = await connect({
        local: new MemoryLocalStore(),
        isolation: "none",
        address,
        key: "order/1",
        tasks: relayRemote,
        ...quiet,
      });
      assert.equal(outputs.r5.n, 5);
      const done = await server.run("order/1");
      assert.deepEqual(done?.tasks.map((t) => t.attempts), [2, 1, 1, 1, 1]);
    },
  );

  await t.step("a second hello on one call is rejected", async () => {
    const call = rawCall(address);
    call.send(hello(relay, "order/2"));
    await call.next("dispatch");
    call.send(hello(relay, "order/2"));
    const status = await call.status;
    assert.equal(status.code, Status.INVALID_ARGUMENT);
    assert.match(status.details, /hello: sent twice/);
  });

  await t.step("a stale attempt's late result is ignored", async () => {
    const call = rawCall(address);
    call.send(hello(relay, "order/2"));
    const dispatch = await call.next("dispatch");
    assert.equal(dispatch.dispatch.attempt, 2);
    call.send({
      kind: "result",
      result: { task: "r1", attempt: 1, output: encodePayload({ n: 99 }, "output") },
    });
    call.send({
      kind: "result",
      result: { task: "r1", attempt: 2, output: encodePayload({ n: 1 }, "output") },
    });
    const next = await call.next("dispatch");
    assert.equal(next.dispatch.task, "r3");
    const record = await server.run("order/2");
    assert.equal(record?.tasks[0].status, "completed");
    await call[Symbol.asyncDispose]();
  });

  await t.step("a second remote on a busy run is refused with ALREADY_EXISTS", async () => {
    const first = rawCall(address);
    first.send(hello(relay, "busy/1"));
    await first.next("dispatch");
    const second = rawCall(address);
    second.send(hello(relay, "busy/1"));
    const status = await second.status;
    assert.equal(status.code, Status.ALREADY_EXISTS);
    assert.match(status.details, /Run "busy\/1" already has a remote attached/);
    await first[Symbol.asyncDispose]();
  });

  await t.step("garbage bytes end the call with INVALID_ARGUMENT", async () => {
    const call = rawCall(address);
    call.send(new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2]));
    const status = await call.status;
    assert.equal(status.code, Status.INVALID_ARGUMENT);
    assert.match(status.details, /Malformed frame/);
  });
});

Deno.test("either side may end its half of the stream first", async (t) => {
  await using server = await serve({
    store: new MemoryStore(),
    workflows: relayServer,
    port: 0,
    ...quiet,
  });

  await t.step("the remote half-closes: the call ends with a status promptly", async () => {
    const call = rawCall(server.address);
    call.send(hello(relay, "half/1"));
    await call.next("dispatch");
    call.halfClose();
    const status = await call.status;
    assert.equal(status.code, Status.OK);
    const record = await server.run("half/1");
    assert.equal(
      record?.tasks[0].status,
      "pending",
      "the abandoned attempt is not running any more",
    );
  });

  await t.step(
    "the server ends first when the run completes: the remote sees end and status",
    async () => {
      const call = rawCall(server.address);
      call.send(hello(relay, "half/2"));
      for (const [task, n] of [["r1", 1], ["r3", 3], ["r5", 5]] as const) {
        const dispatch = await call.next("dispatch");
        assert.equal(dispatch.dispatch.task, task);
        const output = task === "r5" ? { n, text: "done" } : { n };
        call.send({
          kind: "result",
          result: { task, attempt: 1, output: encodePayload(output, "output") },
        });
      }
      await call.next("completed");
      const status = await call.status;
      assert.equal(status.code, Status.OK);
    },
  );

  await t.step("the half-closed run resumes with a new remote", async () => {
    const outputs = await connect({
      local: new MemoryLocalStore(),
      isolation: "none",
      address: server.address,
      key: "half/1",
      tasks: relayRemote,
      ...quiet,
    });
    assert.equal(outputs.r5.n, 5);
  });
});

Deno.test("serve() in solo mode shuts down after one run", async () => {
  const server = await serve({
    store: new MemoryStore(),
    workflows: relayServer,
    port: 0,
    solo: true,
    ...quiet,
  });
  await connect({
    local: new MemoryLocalStore(),
    isolation: "none",
    address: server.address,
    key: "solo/1",
    tasks: relayRemote,
    ...quiet,
  });
  await server.finished;
  await rejects(
    connect({
      local: new MemoryLocalStore(),
      isolation: "none",
      address: server.address,
      key: "solo/2",
      tasks: relayRemote,
      connectTimeout: 1000,
      ...quiet,
    }),
    ErrorCode.Unavailable,
  );
});

Deno.test("shutdown() lets an in-flight server task finish within the grace period", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => release = resolve);
  let started!: () => void;
  const running = new Promise<void>((resolve) => started = resolve);
  const slow = defineWorkflow("slow", { version: 1 }).remote("a").server("b", {
    returns: returns<string>(),
  });
  const { serverTasks } = await import("../mod.ts");
  const store = new MemoryStore();
  const server = await serve({
    store,
    workflows: serverTasks(slow, {
      b: async () => {
        started();
        await gate;
        return "finished";
      },
    }),
    port: 0,
    ...quiet,
  });
  const client = connect({
    isolation: "none",
    address: server.address,
    key: "slow/1",
    tasks: remoteTasks(slow, { a: () => {} }),
    reconnect: false,
    ...quiet,
  });
  client.catch(() => {});
  await running;
  const stopping = server.shutdown({ grace: 5000 });
  release();
  await stopping;
  await rejects(client, ErrorCode.ShuttingDown, "shutting down");
  const record = await store.load("slow/1");
  assert.equal(
    record?.tasks[1].status,
    "completed",
    "the in-flight task finished and was recorded",
  );
});

Deno.test("outputs travel to the remote once, and a run whose outputs exceed one frame resumes", async () => {
  const MiB = 1024 * 1024;
  const big = defineWorkflow("big", { version: 1 })
    .remote("a", { returns: returns<Uint8Array>() })
    .remote("b", { returns: returns<Uint8Array>() })
    .server("c", { returns: returns<Uint8Array>() })
    .remote("d", { returns: returns<number>() });
  await using server = await serve({
    workflows: serverTasks(big, { c: () => new Uint8Array(3 * MiB).fill(3) }),
    port: 0,
    store: new MemoryStore(),
    ...quiet,
  });
  const remote = remoteTasks(big, {
    a: () => new Uint8Array(3 * MiB).fill(1),
    b: () => new Uint8Array(3 * MiB).fill(2),
    d: (input) => input.a[0] + input.b[0] + input.c[0],
  });
  const first = await connect({
    address: server.address,
    key: "big/1",
    tasks: remote,
    local: new MemoryLocalStore(),
    isolation: "none",
    ...quiet,
  });
  assert.equal(first.d, 6);
  // A remote that comes back gets every output (9 MiB) in its welcome, past the server's 4 MiB
  // inbound limit, which applies to what remotes send.
  const again = await connect({
    address: server.address,
    key: "big/1",
    tasks: remote,
    local: new MemoryLocalStore(),
    isolation: "none",
    ...quiet,
  });
  assert.equal(again.c.byteLength, 3 * MiB);
  assert.equal(again.d, 6);
});
