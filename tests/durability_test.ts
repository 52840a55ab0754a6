/**
 * Durability, proven by killing real processes: a remote or a server SIGKILLed at every task
 * boundary, or in the middle of a task, and the run still completes with every task executed
 * exactly once. Executions are counted from the tasks' own journals (see
 * `fixtures/durable.ts`), not from the engine's bookkeeping.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type Child, spawnDeno } from "./_helpers/process.ts";
import { FINAL_SUM, readJournal } from "./fixtures/durable.ts";

const TASKS = ["r1", "s2", "r3", "s4", "r5"];
const SERVER = "tests/fixtures/durable_server.ts";
const REMOTE = "tests/fixtures/durable_remote.ts";

/** A temporary folder with the files of one scenario. */
async function scenario() {
  const dir = await Deno.makeTempDir({ prefix: "workflow-durable-" });
  return {
    dir,
    store: join(dir, "runs.db"),
    local: join(dir, "remote.db"),
    serverJournal: join(dir, "server.log"),
    remoteJournal: join(dir, "remote.log"),
    async [Symbol.asyncDispose]() {
      await Deno.remove(dir, { recursive: true });
    },
  };
}

type Scenario = Awaited<ReturnType<typeof scenario>>;

function startServer(s: Scenario, port = 0, hang?: string): Child {
  return spawnDeno([
    "-A",
    SERVER,
    "--port",
    String(port),
    "--store",
    s.store,
    "--journal",
    s.serverJournal,
    ...(hang ? ["--hang", hang] : []),
  ]);
}

function startRemote(s: Scenario, port: number, key: string, hang?: string): Child {
  return spawnDeno([
    "-A",
    REMOTE,
    "--address",
    `127.0.0.1:${port}`,
    "--key",
    key,
    "--local",
    s.local,
    "--journal",
    s.remoteJournal,
    ...(hang ? ["--hang", hang] : []),
  ]);
}

async function listening(server: Child): Promise<number> {
  const [, port] = await server.waitFor(/^listening (\d+)$/);
  return Number(port);
}

async function result(remote: Child): Promise<{ r5: { sum: number } }> {
  const [, json] = await remote.waitFor(/^result (.*)$/);
  assert.equal((await remote.status).code, 0, remote.lines.join("\n"));
  return JSON.parse(json);
}

/** The journal lines of `kind` ("run", "validate", "hang") for one task. */
function entries(s: Scenario, kind: string, task: string): string[] {
  const journal = task.startsWith("r") ? s.remoteJournal : s.serverJournal;
  return readJournal(journal).filter((line) => line.startsWith(`${kind} ${task} `));
}

/** Every task did its work exactly once, and the tasks up to `upTo` were dispatched once. */
function assertExactlyOnce(s: Scenario, upTo: number): void {
  for (const [i, task] of TASKS.entries()) {
    assert.equal(entries(s, "run", task).length, 1, `${task} ran ${entries(s, "run", task)}`);
    if (i < upTo) {
      assert.deepEqual(
        entries(s, "validate", task),
        [`validate ${task} 1`],
        `${task} completed before the kill and must never be dispatched again`,
      );
    }
  }
}

async function stop(server: Child): Promise<void> {
  server.kill("SIGTERM");
  await server.status;
}

Deno.test("a remote SIGKILLed after each task boundary resumes, and each task runs once", async (t) => {
  for (const [k, task] of TASKS.entries()) {
    await t.step(`killed after task ${k + 1} (${task}) completes`, async () => {
      await using s = await scenario();
      await using server = startServer(s);
      const port = await listening(server);
      const key = `ledger/remote-kill-${k + 1}`;
      // The first remote task after the boundary hangs in attempt 1, so that the remote is
      // surely killed before the run can finish.
      const hang = TASKS.slice(k + 1).find((name) => name.startsWith("r"));
      await using first = startRemote(s, port, key, hang);
      await server.waitFor(new RegExp(`^event task.completed ${task} 1$`));
      first.kill("SIGKILL");
      await first.status;
      if (hang) assert.ok(!first.lines.some((line) => line.startsWith("result")));
      await using second = startRemote(s, port, key);
      const outputs = await result(second);
      assert.equal(outputs.r5.sum, FINAL_SUM);
      assertExactlyOnce(s, k + 1);
      await stop(server);
    });
  }
});

Deno.test("a server SIGKILLed after each task boundary restarts on its SQLite file and the run resumes", async (t) => {
  for (const [k, task] of TASKS.slice(0, 4).entries()) {
    await t.step(`killed after task ${k + 1} (${task}) completes`, async () => {
      await using s = await scenario();
      // The task after the boundary hangs in attempt 1 (on its side), so that the server is
      // surely killed while it is in flight.
      const next = TASKS[k + 1];
      const server = startServer(s, 0, next.startsWith("s") ? next : undefined);
      const port = await listening(server);
      const key = `ledger/server-kill-${k + 1}`;
      await using remote = startRemote(s, port, key, next.startsWith("r") ? next : undefined);
      await server.waitFor(new RegExp(`^event task.completed ${task} 1$`));
      server.kill("SIGKILL");
      await server.status;
      await using again = startServer(s, port);
      await listening(again);
      const outputs = await result(remote);
      assert.equal(outputs.r5.sum, FINAL_SUM);
      assertExactlyOnce(s, k + 1);
      await stop(again);
    });
  }
});

Deno.test("a remote SIGKILLed during a remote task: the task is retried as attempt 2 and completes once", async () => {
  await using s = await scenario();
  await using server = startServer(s);
  const port = await listening(server);
  const key = "ledger/mid-task";
  await using first = startRemote(s, port, key, "r3");
  await first.waitFor(/^hanging in r3$/);
  first.kill("SIGKILL");
  await first.status;
  await using second = startRemote(s, port, key, "r3");
  const outputs = await result(second);
  assert.equal(outputs.r5.sum, FINAL_SUM);
  assert.deepEqual(entries(s, "hang", "r3"), ["hang r3 1"]);
  assert.deepEqual(entries(s, "run", "r3"), ["run r3 2"], "attempt 2 did the work, once");
  await server.waitFor(/^event task.completed r3 2$/);
  assertExactlyOnce(s, 2);
  await stop(server);
});

Deno.test("the secret example resumes after either process is killed mid-run", async (t) => {
  const server = (s: Scenario, port: number) =>
    spawnDeno([
      "-A",
      "examples/secret/server.ts",
      "--port",
      String(port),
      "--store",
      s.store,
      "--step-delay",
      "300",
    ]);
  const client = (s: Scenario, port: number, key: string) =>
    spawnDeno([
      "-A",
      "examples/secret/client.ts",
      "--port",
      String(port),
      "--key",
      key,
      "--local",
      s.local,
    ]);
  const port = async (server: Child) => Number((await server.waitFor(/listening on \S+:(\d+)/))[1]);
  const REMOTE_PUBLIC_DONE = /remote-public +✔ completed/;

  await t.step("the client is killed, and started again with the same key", async () => {
    await using s = await scenario();
    await using first = server(s, 0);
    const listeningOn = await port(first);
    await using killed = client(s, listeningOn, "dh-secret/kill-client");
    await first.waitFor(REMOTE_PUBLIC_DONE);
    killed.kill("SIGKILL");
    await killed.status;
    await using again = client(s, listeningOn, "dh-secret/kill-client");
    await again.waitFor(/client: secret agreed/);
    assert.equal((await again.status).code, 0, again.lines.join("\n"));
    await first.waitFor(/server: secret agreed/);
    await stop(first);
  });

  await t.step("the server is killed, and started again on the same store", async () => {
    await using s = await scenario();
    const first = server(s, 0);
    const listeningOn = await port(first);
    await using remote = client(s, listeningOn, "dh-secret/kill-server");
    await first.waitFor(REMOTE_PUBLIC_DONE);
    first.kill("SIGKILL");
    await first.status;
    await using again = server(s, listeningOn);
    await remote.waitFor(/client: secret agreed/);
    assert.equal((await remote.status).code, 0, remote.lines.join("\n"));
    await again.waitFor(/server: secret agreed/);
    await stop(again);
  });
});
