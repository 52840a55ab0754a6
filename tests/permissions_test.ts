/**
 * Remote tasks run under the permissions they declare, capped by the remote's ceiling.
 *
 * This process runs with `-A`; every task below runs in its own isolate with only its grant,
 * over real gRPC (`serve()` on port 0 and `connect()`).
 */
import assert from "node:assert/strict";
import {
  connect,
  type ConnectOptions,
  ErrorCode,
  MemoryLocalStore,
  MemoryStore,
  remoteTasks,
  serve,
  serverTasks,
  WorkflowError,
} from "../mod.ts";
import type { AnyWorkflow } from "../workflow/definition.ts";
import { formatReview, reviewPermissions } from "../client/review.ts";
import { prepareIsolation } from "../client/sandbox.ts";
import { decodePayload } from "../proto/payload.ts";
import type { Value } from "../workflow/payload.ts";
import type { TaskContext } from "../workflow/task.ts";
import {
  bare,
  bareRemote,
  chat,
  chatRemote,
  granted,
  grantedRemote,
  hog,
  hogRemote,
  probe,
  probeRemote,
  QUERIES,
  spin,
  spinRemote,
  stubborn,
  stubbornRemote,
} from "./fixtures/sandboxed.ts";
import { spawnDeno } from "./_helpers/process.ts";
import { logsRemoteTasks } from "../examples/logs/remote_tasks.ts";
import { logsServerTasks } from "../examples/logs/server_tasks.ts";

const root = new URL("../", import.meta.url).pathname;

/** A local store that remembers every value set, even after the run clears it. */
class RecordingLocalStore extends MemoryLocalStore {
  readonly seen = new Map<string, Uint8Array>();
  override set(runKey: string, name: string, value: Uint8Array): Promise<void> {
    this.seen.set(name, value.slice());
    return super.set(runKey, name, value);
  }
}

interface Fixture extends AsyncDisposable {
  address: string;
  cwd: string;
  port: number;
  url: string;
  server: Awaited<ReturnType<typeof serve>>;
}

/** A server for every fixture workflow, a working folder, a TCP listener and a module host. */
async function fixture(): Promise<Fixture> {
  const cwd = await Deno.makeTempDir({ prefix: "permissions_test_" });
  await Deno.mkdir(`${cwd}/data`);
  await Deno.mkdir(`${cwd}/out`);
  await Deno.writeTextFile(`${cwd}/data/a.txt`, "inside");
  await Deno.writeTextFile(`${cwd}/secret.txt`, "outside");
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepting = (async () => {
    for await (const connection of listener) connection.close();
  })();
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      new Response("export default 'imported';", {
        headers: { "content-type": "application/javascript" },
      }),
  );
  const port = listener.addr.port;
  const url = `http://127.0.0.1:${http.addr.port}/module.js`;
  const server = await serve({
    store: new MemoryStore(),
    workflows: [
      serverTasks(probe, { setup: () => ({ port, url }) }),
      serverTasks(bare, {}),
      serverTasks(granted, {}),
      serverTasks(spin, {}),
      serverTasks(hog, {}),
      serverTasks(stubborn, {}),
    ],
    port: 0,
    progress: false,
  });
  return {
    address: server.address,
    cwd,
    port,
    url,
    server,
    async [Symbol.asyncDispose]() {
      await server.shutdown();
      listener.close();
      await accepting.catch(() => {});
      await http.shutdown();
      await Deno.remove(cwd, { recursive: true });
    },
  };
}

function options<W extends AnyWorkflow>(
  f: Fixture,
  key: string,
  tasks: ConnectOptions<W>["tasks"],
  more: Partial<ConnectOptions<W>> = {},
): ConnectOptions<W> {
  return {
    address: f.address,
    key,
    tasks,
    cwd: f.cwd,
    progress: false,
    reconnect: false,
    local: new MemoryLocalStore(),
    ...more,
  };
}

async function failure(promise: Promise<unknown>): Promise<WorkflowError> {
  const error = await promise.then(
    () => assert.fail("expected the run to fail"),
    (e) => e,
  );
  assert.ok(error instanceof WorkflowError, `expected a WorkflowError, got ${error}`);
  return error;
}

Deno.test("a task is denied every access outside its grant, and both sides see it", async (t) => {
  await using f = await fixture();
  const denied: [string, string][] = [
    ["read-outside", 'read access to "/etc/passwd"'],
    ["read-relative-escape", 'read access to "./data/../secret.txt"'],
    ["write", "write access to"],
    ["net", `net access to "127.0.0.1:${f.port}"`],
    ["fetch", `net access to "127.0.0.1:`],
    ["env", 'env access to "HOME"'],
    ["run", 'run access to "true"'],
    ["ffi", "ffi access to"],
    ["import-net", `import access to "127.0.0.1:`],
    ["import-data", 'import access to "data:'],
    ["worker", "worker access to"],
    ["request", 'read access to "/etc/passwd"'],
    ["sys", 'sys access to "hostname"'],
  ];
  for (const [op, access] of denied) {
    await t.step(op, async () => {
      const key = `probe/${op}`;
      const error = await failure(
        connect(options(f, key, probeRemote, { allow: { read: ["./data"] } })),
      );
      assert.equal(error.code, ErrorCode.RunFailed, error.message);
      assert.match(error.message, /PermissionDenied/);
      assert.match(error.message, /Task "probe" of run "probe\/[a-z-]+" was denied/);
      assert.ok(error.message.includes(access), `"${access}" in: ${error.message}`);
      const record = await f.server.run(key);
      assert.equal(record?.status, "failed");
      const task = record!.tasks[1];
      assert.equal(task.error?.code, ErrorCode.PermissionDenied, task.error?.message);
      assert.ok(task.error?.message.includes(access), task.error?.message);
    });
  }
  await t.step("the same task succeeds inside its grant", async () => {
    const outputs = await connect(options(f, "probe/read-inside", probeRemote, {
      allow: { read: ["./data"] },
    }));
    assert.equal(outputs.probe, "inside");
  });
});

Deno.test("a task that declares no permissions gets none, and its context works", async () => {
  await using f = await fixture();
  const local = new RecordingLocalStore();
  const outputs = await connect(options(f, "bare/1", bareRemote, { local }));
  const { states, back, pid } = outputs.bare;
  QUERIES.forEach((query, i) => {
    assert.notEqual(states[i], "granted", `${JSON.stringify(query)} is ${states[i]}`);
  });
  // Every kind but import is denied outright; import is never granted ("prompt" fails too).
  assert.deepEqual(
    states.filter((_, i) => QUERIES[i].name !== "import"),
    Array(QUERIES.filter((q) => q.name !== "import").length).fill("denied"),
  );
  assert.deepEqual(back, { big: 2n ** 100n, bytes: new Uint8Array([1, 2, 3]), when: new Date(0) });
  assert.ok(local.seen.has("kept"), "ctx.local.set reached the client's store");
  assert.notEqual(pid, Deno.pid, "the task ran in another process");
  const record = await f.server.run("bare/1");
  assert.equal(record?.tasks[0].progress?.note, "half way");
});

Deno.test("an isolated task sends live messages and gets answers through the client", async () => {
  const ticks: bigint[] = [];
  await using server = await serve({
    store: new MemoryStore(),
    workflows: serverTasks(chat, {}, {
      on: {
        ask: ({ q }) => q.toUpperCase(),
        tick: ({ at }) => {
          ticks.push(at);
        },
      },
    }),
    port: 0,
    progress: false,
  });
  const outputs = await connect({
    address: server.address,
    key: "chat/isolated",
    tasks: chatRemote,
    local: new MemoryLocalStore(),
    progress: false,
  });
  assert.equal(outputs.talk.answer, "WHO IS THERE?");
  assert.deepEqual(ticks, Array.from({ length: 100 }, (_, i) => BigInt(i + 1) ** 20n));
});

Deno.test("a task granted one of each kind can use each inside its grant", async () => {
  await using f = await fixture();
  Deno.env.set("PROBE_PORT", String(f.port));
  Deno.env.set("PROBE_URL", f.url);
  try {
    const outputs = await connect(options(f, "granted/1", grantedRemote, {
      allow: granted.task("granted")!.permissions,
    }));
    const result = outputs.granted;
    assert.equal(result.read, "inside");
    assert.equal(result.run, 0);
    assert.equal(result.hostname, Deno.hostname());
    assert.equal(result.imported, "imported");
    if (Deno.build.os === "linux") assert.equal(result.pid, result.self);
    assert.equal(await Deno.readTextFile(`${f.cwd}/out/b.txt`), "written");
  } finally {
    Deno.env.delete("PROBE_PORT");
    Deno.env.delete("PROBE_URL");
  }
});

Deno.test("connect() refuses a definition beyond its ceiling before any task runs", async () => {
  await using f = await fixture();
  const error = await failure(
    connect(options(f, "granted/refused", grantedRemote, {
      allow: { read: ["./data"], net: ["127.0.0.1:1"], env: ["PROBE_PORT"] },
    })),
  );
  assert.equal(error.code, ErrorCode.PermissionDenied, error.message);
  for (
    const access of [
      `write access to "${f.cwd}/out"`,
      'net access to "127.0.0.1"',
      'env access to "PROBE_*"',
      'run access to "true"',
      'sys access to "hostname"',
      "ffi access to",
      'import access to "127.0.0.1"',
    ]
  ) {
    assert.ok(error.message.includes(`task "granted": ${access}`), `${access} in ${error.message}`);
  }
  assert.doesNotMatch(error.message, /read access/);
  const record = await f.server.run("granted/refused");
  assert.equal(record?.status, "failed");
  assert.equal(record?.error?.code, ErrorCode.PermissionDenied);
  assert.match(record!.error!.message, /refused/);
  // The server may have dispatched the first task before the refusal reached it; the remote
  // never ran it: no output, no side effect.
  assert.ok(
    record?.tasks[0].status === "pending" || record?.tasks[0].status === "failed",
    `the first task is ${record?.tasks[0].status}`,
  );
  assert.deepEqual(Object.keys(record?.outputs ?? {}), []);
  await assert.rejects(Deno.stat(`${f.cwd}/out/b.txt`), Deno.errors.NotFound);
});

Deno.test("a busy-looping task is killed at its timeout", async (t) => {
  await t.step("by the client's own clock", async () => {
    const isolation = await prepareIsolation(
      { tasks: spinRemote, sandbox: { killGrace: 200 } },
      "spin/direct",
    );
    const abort = new AbortController();
    const kept = new Map<string, Value>();
    const context = {
      key: "spin/direct",
      task: "spin",
      attempt: 1,
      side: "remote",
      signal: abort.signal,
      local: {
        get: (name: string) => Promise.resolve(kept.get(name)),
        set: (name: string, value: Value) => Promise.resolve(void kept.set(name, value)),
      },
      progress: () => {},
      heartbeat: () => {},
      messages: {},
    } as unknown as TaskContext;
    try {
      const outcome = await isolation.run!(spin.task("spin")!, {}, context, abort);
      assert.equal(outcome.ok, false);
      const error = (outcome as { error: WorkflowError }).error;
      assert.equal(error.code, ErrorCode.TaskTimeout);
      assert.match(error.message, /timed out after 300 ms .*was killed/);
      await assertGone(kept.get("pid") as number);
    } finally {
      await isolation.close();
    }
  });

  await t.step("when the server times the attempt out", async () => {
    await using f = await fixture();
    const local = new RecordingLocalStore();
    const error = await failure(
      connect(options(f, "spin/1", spinRemote, { local, sandbox: { killGrace: 200 } })),
    );
    assert.equal(error.code, ErrorCode.RunFailed);
    assert.match(error.message, /TaskTimeout: .*timed out after 300 ms/);
    assert.ok(local.seen.has("pid"), "the task reported its pid");
    await assertGone(decodePayload(local.seen.get("pid")!, "pid") as number);
  });
});

Deno.test("cancelling a run kills the isolate of a task that ignores its signal", async () => {
  await using f = await fixture();
  const local = new RecordingLocalStore();
  const spinning = (async () => {
    for await (const event of f.server.events()) {
      if (event.type === "task.progress" && event.key === "stubborn/1") return;
    }
  })();
  const run = failure(
    connect(options(f, "stubborn/1", stubbornRemote, { local, sandbox: { killGrace: 200 } })),
  );
  await spinning;
  assert.equal(await f.server.cancel("stubborn/1", "stop spinning"), true);
  const error = await run;
  assert.equal(error.code, ErrorCode.Cancelled);
  assert.match(error.message, /stop spinning/);
  assert.equal((await f.server.run("stubborn/1"))?.status, "cancelled");
  await assertGone(decodePayload(local.seen.get("pid")!, "pid") as number);
});

/** Checks that process `pid` no longer exists (Linux: its /proc entry is gone). */
async function assertGone(pid: number): Promise<void> {
  assert.equal(typeof pid, "number");
  assert.notEqual(pid, Deno.pid);
  if (Deno.build.os !== "linux") return;
  await assert.rejects(Deno.stat(`/proc/${pid}`), Deno.errors.NotFound);
}

Deno.test("a task that allocates without bound is stopped and the client keeps running", async () => {
  await using f = await fixture();
  const error = await failure(
    connect(options(f, "hog/1", hogRemote, { sandbox: { memoryLimit: 64 } })),
  );
  assert.equal(error.code, ErrorCode.RunFailed);
  assert.match(error.message, /ResourceExhausted: .*ran out of memory.*64 MiB/);
  const after = await connect(options(f, "bare/after-hog", bareRemote));
  assert.equal(after.bare.states.length, QUERIES.length);
});

Deno.test("connect() refuses to run tasks without a module URL unless isolation is none", async () => {
  await using f = await fixture();
  const inProcess = remoteTasks(bare, {
    bare: () => ({ states: [], back: null, pid: Deno.pid }),
  });
  await assert.rejects(
    connect(options(f, "bare/no-module", inProcess)),
    (error: Error) =>
      error instanceof TypeError && /no module URL/.test(error.message) &&
      /isolation: "none"/.test(error.message),
  );
  const outputs = await connect(options(f, "bare/in-process", inProcess, { isolation: "none" }));
  assert.equal(outputs.bare.pid, Deno.pid);
});

Deno.test("a task module that loads a file outside its project is refused before it runs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "leaky_" });
  try {
    await Deno.mkdir(`${dir}/tasks`);
    await Deno.writeTextFile(`${dir}/outside.json`, '{ "secret": "hunter2" }');
    await Deno.writeTextFile(
      `${dir}/tasks/leaky.ts`,
      `import { defineWorkflow, remoteTasks, returns } from ${
        JSON.stringify(new URL("../workflow/mod.ts", import.meta.url).href)
      };
import secret from "../outside.json" with { type: "json" };
export const leaky = defineWorkflow("leaky", { version: 1 })
  .remote("leak", { returns: returns<string>() });
export const leakyRemote = remoteTasks(leaky, { leak: () => JSON.stringify(secret) }, {
  module: import.meta.url,
});
`,
    );
    const { leaky, leakyRemote } = await import(`file://${dir}/tasks/leaky.ts`);
    const sandbox = { config: `${root}deno.json` };
    const review = await reviewPermissions(leakyRemote, { sandbox });
    assert.deepEqual(review.problems, [
      `the task module loads ${dir}/outside.json, outside its project folder (${
        root.slice(0, -1)
      }, ${dir}/tasks)`,
    ]);
    await using server = await serve({
      store: new MemoryStore(),
      workflows: serverTasks(leaky, {}),
      port: 0,
      progress: false,
    });
    const error = await failure(connect({
      address: server.address,
      key: "leaky/1",
      tasks: leakyRemote,
      sandbox,
      local: new MemoryLocalStore(),
      progress: false,
    }));
    assert.equal(error.code, ErrorCode.PermissionDenied);
    assert.match(error.message, /outside\.json, outside its project folder/);
    assert.equal((await server.run("leaky/1"))?.error?.code, ErrorCode.PermissionDenied);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reviewPermissions() lists each task's grant and what exceeds the ceiling", async () => {
  const cwd = await Deno.makeTempDir();
  try {
    const review = await reviewPermissions(grantedRemote, { cwd, allow: { read: ["."] } });
    assert.equal(review.tasks[0].permissions.read.toString(), `${cwd}/data`);
    assert.equal(review.problems.length, 9); // ffi lists three paths
    assert.ok(review.graph!.files.some((file) => file.endsWith("tests/fixtures/sandboxed.ts")));
    assert.deepEqual(review.graph!.outside, []);
    const table = formatReview(review);
    assert.match(table, /granted +none +read .*\/data; write .*\/out; net 127\.0\.0\.1/);
    assert.match(table, /EXCEEDS: write access to/);
    assert.match(table, /Refused \(9\):/);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("the logs example summarises one folder under a read grant of that folder only", async () => {
  await using server = await serve({
    store: new MemoryStore(),
    workflows: logsServerTasks,
    port: 0,
    progress: false,
  });
  const outputs = await connect({
    address: server.address,
    key: "logs-summary/test",
    tasks: logsRemoteTasks,
    cwd: `${root}examples/logs`,
    allow: { read: ["./logs"] },
    local: new MemoryLocalStore(),
    progress: false,
  });
  const files = outputs.summarise.files;
  assert.deepEqual(files.map((file) => file.file), ["app.log", "worker.log"]);
  assert.deepEqual(files[0].levels, { INFO: 4, WARN: 1, ERROR: 1 });
  assert.match(outputs.report.text, /job 88 failed/);
  const review = await reviewPermissions(logsRemoteTasks, { cwd: `${root}examples/logs` });
  assert.deepEqual(review.problems, [
    `task "summarise": read access to "${root}examples/logs/logs"`,
  ]);
});

/** The least privileges the secret example's client needs (documented in the README). */
function leastPrivilege(port: string): string[] {
  return [
    `--allow-net=127.0.0.1:${port}`,
    "--allow-env=GRPC_*,grpc_proxy,https_proxy,http_proxy",
    `--allow-run=${Deno.execPath()}`,
    "--allow-read=.workflow/remote.db",
    "--allow-write=.workflow",
  ];
}

Deno.test("the secret example passes with the least-privilege client command line", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "least_privilege_" });
  try {
    await using server = spawnDeno([
      "-A",
      `${root}examples/secret/server.ts`,
      "--port",
      "0",
      "--solo",
      "--memory",
    ], { cwd });
    const [, port] = await server.waitFor(/listening on \S+:(\d+)/);
    await using client = spawnDeno([
      ...leastPrivilege(port),
      `${root}examples/secret/client.ts`,
      "--port",
      port,
      "--key",
      "dh/least-privilege",
    ], { cwd });
    const [clientStatus, serverStatus] = await Promise.all([client.status, server.status]);
    const text = client.lines.join("\n");
    assert.equal(clientStatus.code, 0, text);
    assert.equal(serverStatus.code, 0, server.lines.join("\n"));
    assert.match(text, /client: secret agreed/);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("the secret example's client prints its review with --dry-run, without connecting", async () => {
  await using client = spawnDeno([
    ...leastPrivilege("1"),
    "examples/secret/client.ts",
    "--dry-run",
  ], { cwd: root });
  const status = await client.status;
  const text = client.lines.join("\n");
  assert.equal(status.code, 0, text);
  assert.match(text, /Workflow "dh-secret" v1/);
  for (const task of ["remote-public", "remote-secret", "remote-verify"]) {
    assert.match(text, new RegExp(`${task} +none +none +within`));
  }
  assert.doesNotMatch(text, /connected/);
});

Deno.test("a task module that imports raw bytes (the client's data, a key) is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "raw_" });
  try {
    await Deno.mkdir(`${dir}/tasks`);
    await Deno.mkdir(`${dir}/.workflow`);
    await Deno.writeTextFile(`${dir}/.workflow/remote.db`, "the client's secrets");
    await Deno.writeTextFile(`${dir}/deno.json`, '{ "unstable": ["raw-imports"] }');
    await Deno.writeTextFile(
      `${dir}/tasks/raw.ts`,
      `import { defineWorkflow, remoteTasks, returns } from ${
        JSON.stringify(new URL("../workflow/mod.ts", import.meta.url).href)
      };
export const raw = defineWorkflow("raw", { version: 1 }).remote("steal", { returns: returns<number>() });
export const rawRemote = remoteTasks(raw, {
  steal: async () => (await import("../.workflow/remote.db", { with: { type: "bytes" } })).default.length,
}, { module: import.meta.url });
`,
    );
    const { raw, rawRemote } = await import(`file://${dir}/tasks/raw.ts`);
    await using server = await serve({
      store: new MemoryStore(),
      workflows: serverTasks(raw, {}),
      port: 0,
      progress: false,
    });
    const error = await failure(connect({
      address: server.address,
      key: "raw/1",
      tasks: rawRemote,
      sandbox: { config: `${dir}/deno.json` },
      local: new MemoryLocalStore(),
      progress: false,
    }));
    assert.match(error.message, /remote\.db is imported as raw bytes or text/);
    assert.notEqual((await server.run("raw/1"))?.tasks[0].status, "completed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
