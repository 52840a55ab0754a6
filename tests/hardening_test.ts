/**
 * Findings of an adversarial review, each kept fixed by a test: error codes a remote may not
 * use to stall a run, a refusal in the middle of a run, bounded message queues, terminal
 * escapes, message declarations at the handshake, and keys no URL can name.
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
} from "../mod.ts";
import { MAX_QUEUED_BYTES, MessageHub } from "../workflow/messages.ts";
import { decodePayload, encodePayload } from "../proto/payload.ts";
import { printable } from "../workflow/console.ts";
import { hello, rawCall } from "./_helpers/raw_call.ts";

const quiet = { progress: false, isolation: "none", local: new MemoryLocalStore() } as const;

Deno.test("a remote failure coded ShuttingDown is retried like any other, never stalls the run", async () => {
  const flow = defineWorkflow("stall", { version: 1 })
    .remote("a", { retry: { maxAttempts: 2, initialDelay: 1, maxDelay: 1 } })
    .server("b");
  let attempts = 0;
  await using server = await serve({
    workflows: serverTasks(flow, { b: () => {} }),
    port: 0,
    store: new MemoryStore(),
    progress: false,
  });
  await connect({
    address: server.address,
    key: "stall/1",
    tasks: remoteTasks(flow, {
      a: () => {
        if (++attempts === 1) throw new WorkflowError(ErrorCode.ShuttingDown, "not really");
      },
    }),
    ...quiet,
  });
  assert.equal(attempts, 2);
  assert.equal((await server.run("stall/1"))?.status, "completed");
});

Deno.test("a refusal while a server task runs aborts that task and fails the run", async () => {
  const flow = defineWorkflow("refused", { version: 1 }).server("busy").remote("after");
  let aborted = false;
  let started!: () => void;
  const running = new Promise<void>((resolve) => started = resolve);
  await using server = await serve({
    workflows: serverTasks(flow, {
      busy: (_input, ctx) =>
        new Promise<void>((_, reject) => {
          started();
          ctx.signal.addEventListener("abort", () => {
            aborted = true;
            reject(ctx.signal.reason);
          });
        }),
    }),
    port: 0,
    store: new MemoryStore(),
    progress: false,
  });
  await using call = rawCall(server.address);
  call.send(hello(flow, "refused/1"));
  await running;
  call.send({
    kind: "refusal",
    refusal: { error: { code: ErrorCode.PermissionDenied, message: "not on my machine" } },
  });
  const failed = await call.next("failed");
  assert.match(failed.failed.error.message, /not on my machine/);
  const record = await server.run("refused/1");
  assert.equal(record?.status, "failed");
  assert.equal(record?.tasks[0].status, "failed", "the server task is not recorded completed");
  assert.ok(aborted, "the server task saw its signal abort");
});

Deno.test("messages nobody asked for are bounded in bytes and dropped with the connection", () => {
  const flow = defineWorkflow("flood", { version: 1 })
    .message("blob", { from: "remote", value: returns<Uint8Array>() })
    .server("s");
  const hub = new MessageHub({
    side: "server",
    workflow: flow,
    key: "flood/1",
    transmit: () => true,
  });
  const blob = encodePayload(new Uint8Array(1024 * 1024), "blob");
  for (let sequence = 1; sequence <= 64; sequence++) {
    hub.deliver({ task: "", attempt: 0, topic: "blob", sequence, replyTo: 0, value: blob });
  }
  // The oldest were dropped: what is kept fits the bound.
  let kept = 0;
  // Takes a message that is already queued, if there is one; never leaves a waiter behind.
  const take = () => {
    const stop = new AbortController();
    const taken = hub.receive("blob", stop.signal).then(() => true, () => false);
    stop.abort();
    return taken;
  };
  return (async () => {
    while (await take()) kept++;
    assert.ok(kept * blob.byteLength <= MAX_QUEUED_BYTES, `${kept} MiB kept`);
    assert.ok(kept >= 8, `${kept} kept`);
    hub.deliver({ task: "", attempt: 0, topic: "blob", sequence: 65, replyTo: 0, value: blob });
    hub.disconnected("test");
    assert.equal(await take(), false, "queued messages are dropped with the connection");
  })();
});

Deno.test("run text printed on a console cannot drive the terminal", () => {
  assert.equal(printable("ok\u001b]0;owned\u0007\u001b[2J"), "ok\\x1b]0;owned\\x07\\x1b[2J");
  assert.equal(printable("tab\there"), "tab here");
  assert.equal(printable("ünïcode ✓"), "ünïcode ✓");
});

Deno.test("definitions that differ only in their messages are refused at the handshake", async () => {
  const base = defineWorkflow("mm", { version: 1 });
  const onServer = base.message("config", { from: "server", value: returns<number>() })
    .remote("r");
  const onRemote = base.message("config", { from: "remote", value: returns<number>() })
    .remote("r");
  await using server = await serve({
    workflows: serverTasks(onServer, {}),
    port: 0,
    store: new MemoryStore(),
    progress: false,
  });
  await assert.rejects(
    connect({
      address: server.address,
      key: "mm/1",
      tasks: remoteTasks(onRemote, { r: () => {} }),
      ...quiet,
    }),
    (error: unknown) => {
      assert.ok(error instanceof WorkflowError);
      assert.equal(error.code, ErrorCode.DefinitionMismatch);
      assert.match(error.message, /message declarations/);
      assert.match(error.message, /run "mm\/1"/);
      return true;
    },
  );
});

Deno.test('the keys "." and ".." are refused: no URL path can name them', async () => {
  const flow = defineWorkflow("dots", { version: 1 }).remote("r");
  for (const key of [".", ".."]) {
    await assert.rejects(
      connect({ address: "127.0.0.1:1", key, tasks: remoteTasks(flow, { r: () => {} }), ...quiet }),
      new RegExp(`cannot be "${key.replaceAll(".", "\\.")}"`),
    );
  }
});

Deno.test("a reply prepared for a connection that ended is never sent on the next one", async () => {
  const flow = defineWorkflow("late", { version: 1 })
    .message("ask", { from: "remote", value: returns<string>(), reply: returns<string>() })
    .server("s");
  const sent: number[] = [];
  let answer!: (reply: string) => void;
  const hub = new MessageHub({
    side: "server",
    workflow: flow,
    key: "late/1",
    handlers: { ask: () => new Promise<string>((resolve) => answer = resolve) },
    transmit: (frame) => {
      sent.push(frame.replyTo);
      return true;
    },
  });
  hub.deliver({
    task: "",
    attempt: 0,
    topic: "ask",
    sequence: 1,
    replyTo: 0,
    value: encodePayload("delete everything?", "ask"),
  });
  await Promise.resolve();
  hub.disconnected("the call ended");
  answer("yes");
  await new Promise((resolve) => setTimeout(resolve, 0)); // lets the handler's answer settle
  assert.deepEqual(sent, [], "the late reply was dropped");
});

Deno.test("an abandoned attempt cannot overwrite local data or report progress", async () => {
  const flow = defineWorkflow("stale", { version: 1 })
    .server("s", { timeout: 50, retry: { maxAttempts: 2, initialDelay: 1, maxDelay: 1 } })
    .remote("r");
  let release!: () => void;
  const held = new Promise<void>((resolve) => release = resolve);
  let staleWrite: unknown;
  const written = Promise.withResolvers<void>();
  await using server = await serve({
    workflows: serverTasks(flow, {
      s: async (_input, ctx) => {
        if (ctx.attempt === 1) {
          await held; // ignores its signal, then writes late
          await ctx.local.set("x", "attempt 1").catch((error) => staleWrite = error);
          ctx.progress(0.5, "late");
          written.resolve();
          return;
        }
        await ctx.local.set("x", "attempt 2");
      },
    }),
    port: 0,
    store: new MemoryStore(),
    progress: false,
  });
  await connect({
    address: server.address,
    key: "stale/1",
    tasks: remoteTasks(flow, { r: () => {} }),
    ...quiet,
  });
  release();
  await written.promise;
  assert.ok(staleWrite instanceof Error, "the late write was refused");
  const record = await server.run("stale/1");
  assert.equal(decodePayload(record!.local.x, "x"), "attempt 2");
  assert.equal(record!.tasks[0].progress, undefined);
});

Deno.test("events() records from the call, not from the first read", async () => {
  const flow = defineWorkflow("eager", { version: 1 }).remote("r");
  await using server = await serve({
    workflows: serverTasks(flow, {}),
    port: 0,
    store: new MemoryStore(),
    progress: false,
  });
  const events = server.events();
  await connect({
    address: server.address,
    key: "eager/1",
    tasks: remoteTasks(flow, { r: () => {} }),
    ...quiet,
  });
  const seen: string[] = [];
  for await (const event of events) {
    seen.push(event.type);
    if (event.type === "run.completed") break;
  }
  assert.equal(seen[0], "run.started");
});
