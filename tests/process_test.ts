/**
 * Behaviour that is about processes: two real processes, and a remote killed mid-stream.
 */
import assert from "node:assert/strict";
import { MemoryStore, serve } from "../mod.ts";
import { spawnDeno } from "./_helpers/process.ts";
import { burstServer, relayServer } from "./_helpers/workflows.ts";
import { connect } from "../mod.ts";
import { relayRemote } from "./_helpers/workflows.ts";
import type { WorkflowEvent } from "../mod.ts";

const root = new URL("../", import.meta.url).pathname;
const TASKS = ["remote-public", "server-public", "remote-secret", "server-secret", "remote-verify"];

Deno.test("the secret example runs as a server and a client process", async () => {
  await using server = spawnDeno(
    ["-A", "examples/secret/server.ts", "--port", "0", "--solo", "--memory"],
    { cwd: root },
  );
  const [, port] = await server.waitFor(/listening on \S+:(\d+)/);
  await using client = spawnDeno([
    "-A",
    "examples/secret/client.ts",
    "--port",
    port,
    "--key",
    `dh/two-processes-${Date.now()}`,
    "--local",
    ":memory:",
  ], {
    cwd: root,
  });
  const [clientStatus, serverStatus] = await Promise.all([client.status, server.status]);
  assert.equal(clientStatus.code, 0, client.lines.join("\n"));
  assert.equal(serverStatus.code, 0, server.lines.join("\n"));
  for (const child of [client, server]) {
    const text = child.lines.join("\n");
    assert.match(text, /secret agreed/);
    for (const task of TASKS) {
      assert.match(text, new RegExp(`${task}  ✔ completed`), `${task} in:\n${text}`);
    }
  }
});

Deno.test("a remote killed while the server floods it does not hurt the server or other runs", async () => {
  await using server = await serve({
    store: new MemoryStore(),
    workflows: [burstServer(20_000), relayServer],
    port: 0,
    progress: false,
  });
  const events: WorkflowEvent[] = [];
  const watching = (async () => {
    for await (const event of server.events()) events.push(event);
  })();
  const firstProgress = (async () => {
    for await (const event of server.events()) if (event.type === "task.progress") return;
  })();

  const remote = spawnDeno([
    "-A",
    "tests/fixtures/remote_main.ts",
    "burst",
    server.address,
    "burst/1",
  ], { cwd: root });
  await firstProgress;
  remote.kill("SIGKILL");
  await remote.status;

  // Another run proceeds while the flood goes to a dead peer.
  const other = await connect({
    isolation: "none",
    address: server.address,
    key: "relay/alongside",
    tasks: relayRemote,
    progress: false,
  });
  assert.equal(other.r5.n, 5);

  // The flood task still completes, and the run waits at "finish" for its remote.
  const waitFor = async (predicate: () => boolean) => {
    for await (const _ of server.events()) if (predicate()) return;
  };
  if (!events.some((e) => e.type === "task.completed" && e.task === "flood")) {
    await waitFor(() => events.some((e) => e.type === "task.completed" && e.task === "flood"));
  }
  assert.ok(events.some((e) => e.type === "remote.detached" && e.key === "burst/1"));
  const waiting = await server.run("burst/1");
  assert.equal(waiting?.status, "running");
  assert.equal(waiting?.tasks[2].status, "pending");

  // A new remote process finishes the run.
  await using again = spawnDeno([
    "-A",
    "tests/fixtures/remote_main.ts",
    "burst",
    server.address,
    "burst/1",
  ], {
    cwd: root,
  });
  const [, json] = await again.waitFor(/^result (.*)$/);
  const outputs = JSON.parse(json);
  assert.equal(outputs.flood.sent, 20_000);
  assert.equal(outputs.finish.pid, again.pid);
  assert.equal((await server.run("burst/1"))?.status, "completed");
  await server.shutdown();
  await watching;
});
