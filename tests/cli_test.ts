/**
 * The CLI as a user runs it: a real server with an SQLite store in a temp folder and its
 * dashboard, real runs, and `deno run cli/main.ts ...` as a child process.
 */
import assert from "node:assert/strict";
import {
  connect,
  defineWorkflow,
  remoteTasks,
  returns,
  type RunRecord,
  serve,
  serverTasks,
  SQLiteStore,
} from "../mod.ts";
import { toRunView } from "../server/dashboard.ts";
import { RECORD_SCHEMA } from "../workflow/state.ts";
import { fragileRemote, fragileServer, relayRemote, relayServer } from "./_helpers/workflows.ts";
import { nextEvent } from "./_helpers/events.ts";

const CLI = new URL("../cli/main.ts", import.meta.url).pathname;
const quiet = { progress: false } as const;

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(
  args: string[],
  env: Record<string, string> = { NO_COLOR: "1" },
): Promise<Output> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
  return { code, stdout: decode(stdout), stderr: decode(stderr) };
}

/** Starts the CLI and returns it with a way to wait for a line of its standard error. */
function spawnCli(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const decode = (stream: ReadableStream<Uint8Array>) =>
    stream.pipeThrough(new TextDecoderStream());
  let stderr = "";
  const stderrSeen = new Set<() => void>();
  const stderrDone = (async () => {
    for await (const chunk of decode(child.stderr)) {
      stderr += chunk;
      for (const wake of stderrSeen) wake();
    }
  })();
  const stdoutText = (async () => {
    let text = "";
    for await (const chunk of decode(child.stdout)) text += chunk;
    return text;
  })();
  return {
    /** Waits (at most 15 s) until standard error contains `text`. */
    async stderrIncludes(text: string): Promise<void> {
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      const check = () => stderr.includes(text) && resolve();
      const timer = setTimeout(() => reject(new Error(`no "${text}" in: ${stderr}`)), 15_000);
      stderrSeen.add(check);
      check();
      try {
        await Promise.race([promise, stderrDone.then(() => check())]);
        if (!stderr.includes(text)) throw new Error(`no "${text}" in: ${stderr}`);
      } finally {
        clearTimeout(timer);
        stderrSeen.delete(check);
      }
    },
    async result(): Promise<Output> {
      const [status, stdout] = await Promise.all([child.status, stdoutText, stderrDone]);
      return { code: status.code, stdout, stderr };
    },
  };
}

/** A server task that reports progress, then waits for the test (or a cancellation). */
const held = defineWorkflow("held", { version: 1 })
  .remote("start", { returns: returns<{ n: number }>() })
  .server("hold", { returns: returns<{ ok: boolean }>() });

const gates = new Map<string, () => void>();
const heldServer = serverTasks(held, {
  hold: (_input, ctx) => {
    ctx.progress(0.5, "holding");
    return new Promise((resolve, reject) => {
      gates.set(ctx.key, () => resolve({ ok: true }));
      ctx.signal.addEventListener("abort", () => reject(new Error("aborted by the test")), {
        once: true,
      });
    });
  },
});
const heldRemote = remoteTasks(held, { start: () => ({ n: 1 }) });

Deno.test("cli: list, show, watch and cancel against a store and a server", async (t) => {
  const folder = await Deno.makeTempDir({ prefix: "workflow_cli_" });
  const path = `${folder}/runs.db`;
  const store = new SQLiteStore({ path, durability: "normal" });
  const server = await serve({
    workflows: [relayServer, fragileServer, heldServer],
    store,
    port: 0,
    dashboard: { port: 0 },
    ...quiet,
  });
  const url = server.dashboardUrl!;
  try {
    await connect({
      isolation: "none",
      address: server.address,
      key: "relay/1",
      tasks: relayRemote,
      ...quiet,
    });
    await connect({
      isolation: "none",
      address: server.address,
      key: "relay/2",
      tasks: relayRemote,
      ...quiet,
    });
    await assert.rejects(
      connect({
        isolation: "none",
        address: server.address,
        key: "fragile/1",
        tasks: fragileRemote("server"),
        ...quiet,
      }),
    );
    const expected = async (key: string) => toRunView((await server.run(key))!);

    await t.step("list prints a table of the runs", async () => {
      const { code, stdout, stderr } = await cli(["list", "--store", path]);
      assert.equal(code, 0, stderr);
      const lines = stdout.trimEnd().split("\n");
      assert.match(lines[0], /^KEY\s+WORKFLOW\s+STATUS\s+TASKS/);
      assert.match(stdout, /fragile\/1\s+fragile\s+✘ failed\s+1\/3/);
      assert.match(stdout, /relay\/1\s+relay\s+✔ completed\s+5\/5/);
      assert.equal(lines.length, 4);
    });

    await t.step("output is plain when it is not a terminal, even without NO_COLOR", async () => {
      const { code, stdout } = await cli(["list", "--store", path], {});
      assert.equal(code, 0);
      assert.ok(!stdout.includes("\x1b["), stdout);
    });

    await t.step("list --json matches the store, with filters and paging", async () => {
      const all = await cli(["list", "--store", path, "--json"]);
      assert.equal(all.code, 0, all.stderr);
      assert.deepEqual(JSON.parse(all.stdout), { runs: await server.runs(), next: null });

      const page = JSON.parse(
        (await cli(["list", "--store", path, "--json", "--limit", "2"])).stdout,
      );
      assert.deepEqual(page.runs.map((r: { key: string }) => r.key), ["fragile/1", "relay/1"]);
      assert.equal(page.next, "relay/1");
      const rest = JSON.parse(
        (await cli(["list", "--store", path, "--json", "--after", page.next])).stdout,
      );
      assert.deepEqual(rest.runs.map((r: { key: string }) => r.key), ["relay/2"]);

      const failed = JSON.parse(
        (await cli(["list", "--store", path, "--json", "--status", "failed"])).stdout,
      );
      assert.deepEqual(failed.runs.map((r: { key: string }) => r.key), ["fragile/1"]);
      const relays = JSON.parse(
        (await cli([
          "list",
          "--store",
          path,
          "--json",
          "--prefix",
          "relay/",
          "--definition",
          "relay",
        ]))
          .stdout,
      );
      assert.equal(relays.runs.length, 2);
    });

    await t.step("show prints the timeline with sides, statuses, attempts and errors", async () => {
      const { code, stdout, stderr } = await cli(["show", "fragile/1", "--store", path]);
      assert.equal(code, 0, stderr);
      assert.match(stdout, /^run fragile\/1 {2}✘ failed {2}fragile v1/);
      assert.match(stdout, /1\s+prepare\s+remote\s+✔ completed\s+1/);
      assert.match(stdout, /2\s+check\s+server\s+✘ failed\s+1/);
      assert.match(stdout, /3\s+finish\s+remote\s+· pending\s+0/);
      assert.match(stdout, /↳ TaskFailed: .*the server task broke on purpose/);
    });

    await t.step(
      "show --json is the run's view, the same from the store and the server",
      async () => {
        for (const key of ["relay/1", "fragile/1"]) {
          const fromStore = await cli(["show", key, "--store", path, "--json"]);
          assert.equal(fromStore.code, 0, fromStore.stderr);
          assert.deepEqual(JSON.parse(fromStore.stdout), await expected(key));
          const fromServer = await cli(["show", key, "--server", url, "--json"]);
          assert.equal(fromServer.code, 0, fromServer.stderr);
          assert.deepEqual(JSON.parse(fromServer.stdout), await expected(key));
        }
        const view = await expected("relay/1");
        assert.deepEqual(
          view.tasks.map((task) => [task.name, task.side, task.status, task.attempts]),
          [
            ["r1", "remote", "completed", 1],
            ["s2", "server", "completed", 1],
            ["r3", "remote", "completed", 1],
            ["s4", "server", "completed", 1],
            ["r5", "remote", "completed", 1],
          ],
        );
        assert.ok(!("outputs" in view) && !("local" in view));
      },
    );

    await t.step("--server mode lists the same runs as the store", async () => {
      const { code, stdout, stderr } = await cli(["list", "--server", url, "--json"]);
      assert.equal(code, 0, stderr);
      assert.deepEqual(JSON.parse(stdout), { runs: await server.runs(), next: null });
    });

    await t.step("show of a missing run fails with exit code 1", async () => {
      for (const source of [["--store", path], ["--server", url]]) {
        const { code, stderr } = await cli(["show", "no/such", ...source]);
        assert.equal(code, 1);
        assert.match(stderr, /No run "no\/such"/);
      }
    });

    await t.step(
      "watch <key> follows a run to its end, from the server and the store",
      async () => {
        const fromServer = spawnCli(["watch", "held/watched", "--server", url]);
        const fromStore = spawnCli(["watch", "held/watched", "--store", path, "--interval", "50"]);
        await fromServer.stderrIncludes('waiting for run "held/watched" to start');
        await fromStore.stderrIncludes('waiting for run "held/watched" to start');
        const holding = nextEvent(
          server,
          (e) => e.key === "held/watched" && e.type === "task.progress",
        );
        const run = connect({
          isolation: "none",
          address: server.address,
          key: "held/watched",
          tasks: heldRemote,
          ...quiet,
        });
        await holding;
        gates.get("held/watched")!();
        await run;
        for (const watcher of [fromServer, fromStore]) {
          const { code, stdout, stderr } = await watcher.result();
          assert.equal(code, 0, stderr);
          assert.match(stdout, /held\/watched {2}task\.completed {2}start {2}remote {2}attempt 1/);
          assert.match(stdout, /held\/watched {2}run\.completed/);
          assert.match(stdout, /run held\/watched {2}✔ completed/);
        }
      },
    );

    await t.step("watch --json prints one event per line", async () => {
      const watcher = spawnCli(["watch", "relay/3", "--server", url, "--json"]);
      await watcher.stderrIncludes("waiting for run");
      await connect({
        isolation: "none",
        address: server.address,
        key: "relay/3",
        tasks: relayRemote,
        ...quiet,
      });
      const { code, stdout, stderr } = await watcher.result();
      assert.equal(code, 0, stderr);
      const events = stdout.trimEnd().split("\n").map((line) => JSON.parse(line));
      assert.equal(events[0].type, "run.started");
      assert.equal(events.at(-1).type, "run.completed");
      assert.equal(events.filter((e) => e.type === "task.completed").length, 5);
      assert.ok(events.every((e) => e.key === "relay/3" && typeof e.at === "number"));
    });

    await t.step("cancel --server stops a run in flight", async () => {
      const holding = nextEvent(
        server,
        (e) => e.key === "held/cancel" && e.type === "task.progress",
      );
      const run = connect({
        isolation: "none",
        address: server.address,
        key: "held/cancel",
        tasks: heldRemote,
        ...quiet,
      });
      const outcome = run.then(() => "completed", (error: Error) => error.message);
      await holding;
      const listed = await cli(["list", "--server", url, "--json", "--status", "running"]);
      assert.deepEqual(
        JSON.parse(listed.stdout).runs.map((r: { key: string }) => r.key),
        ["held/cancel"],
      );
      const running = JSON.parse(
        (await cli(["show", "held/cancel", "--server", url, "--json"])).stdout,
      );
      assert.deepEqual(running.tasks[1].progress, { fraction: 0.5, note: "holding" });
      assert.equal(running.tasks[1].status, "running");

      const { code, stdout, stderr } = await cli([
        "cancel",
        "held/cancel",
        "--server",
        url,
        "--reason",
        "test says stop",
        "--json",
      ]);
      assert.equal(code, 0, stderr);
      assert.deepEqual(JSON.parse(stdout), { key: "held/cancel", cancelled: true });
      assert.match(await outcome, /cancel/i);
      const record = await server.run("held/cancel");
      assert.equal(record?.status, "cancelled");
      assert.match(record?.error?.message ?? "", /test says stop/);

      const again = await cli(["cancel", "held/cancel", "--server", url]);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /already ended \(cancelled\)/);
    });

    await t.step(
      "cancel through a store alone refuses, and --offline marks an orphan",
      async () => {
        const refused = await cli(["cancel", "relay/1", "--store", path]);
        assert.equal(refused.code, 2);
        assert.match(refused.stderr, /a store alone cannot stop a task.*--server URL/);

        const now = Date.now();
        const orphan: RunRecord = {
          schema: RECORD_SCHEMA,
          key: "orphan/1",
          definition: { name: "gone", version: 1, fingerprint: "0" },
          status: "running",
          tasks: [{ name: "lost", side: "server", status: "running", attempts: 1, startedAt: now }],
          outputs: {},
          local: {},
          createdAt: now,
          updatedAt: now,
          version: 1,
        };
        await store.save(orphan);
        const { code, stdout, stderr } = await cli([
          "cancel",
          "orphan/1",
          "--offline",
          "--store",
          path,
        ]);
        assert.equal(code, 0, stderr);
        assert.match(stdout, /Cancelled run "orphan\/1"/);
        const record = await store.load("orphan/1");
        assert.equal(record?.status, "cancelled");
        assert.equal(record?.tasks[0].status, "cancelled");
        assert.equal(record?.version, 2);
      },
    );
  } finally {
    await server.shutdown({ grace: 0 });
    await store.close();
    await Deno.remove(folder, { recursive: true });
  }
});

Deno.test("cli: bad arguments say what is wrong and exit with code 2", async () => {
  const cases: [string[], RegExp][] = [
    [[], /No command given/],
    [["lsit"], /Unknown command "lsit"/],
    [["list", "--bogus"], /Unknown option "--bogus"/],
    [["list", "--status", "done"], /Unknown status "done": expected one of running, completed/],
    [["list", "--limit", "0"], /Bad --limit "0": expected an integer from 1 to 1000/],
    [["list", "--limit"], /Option "--limit" needs a value/],
    [["show"], /"show" needs a run key/],
    [["show", "a", "b"], /Unexpected argument "b"/],
    [["show", "a", "--status", "failed"], /Option "--status" does not apply to "show"/],
    [["list", "--store", "a.db", "--server", "http://x"], /Give one source of runs/],
    [["list", "--server", "ftp://x"], /Bad --server "ftp:\/\/x"/],
    [["cancel", "k", "--server", "http://127.0.0.1:1", "--offline"], /--offline marks a run/],
    [["list", "--database", "x", "--store", "a.db"], /--database and --collection apply to/],
  ];
  for (const [args, message] of cases) {
    const { code, stdout, stderr } = await cli(args);
    assert.equal(code, 2, `${args.join(" ")}: ${stderr}`);
    assert.match(stderr, message, args.join(" "));
    assert.match(stderr, /See "workflow( \w+)? --help" for usage/);
    assert.equal(stdout, "");
  }
});

Deno.test("cli: --help on every command, and sources that are not there", async () => {
  const overview = await cli(["--help"]);
  assert.equal(overview.code, 0);
  assert.match(overview.stdout, /Usage: workflow <command> \[options\]/);
  for (const command of ["list", "show", "watch", "cancel"]) {
    for (const args of [[command, "--help"], ["help", command]]) {
      const { code, stdout } = await cli(args);
      assert.equal(code, 0);
      assert.match(stdout, new RegExp(`^workflow ${command}: `));
      assert.match(stdout, /--json/);
    }
  }
  const folder = await Deno.makeTempDir({ prefix: "workflow_cli_" });
  try {
    const missing = await cli(["list", "--store", `${folder}/none.db`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /No run store at ".*none\.db"/);
    // The store is not created by looking for it.
    await assert.rejects(Deno.stat(`${folder}/none.db`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closed = listener.addr.port;
  listener.close();
  const unreachable = await cli(["list", "--server", `127.0.0.1:${closed}`]);
  assert.equal(unreachable.code, 1);
  assert.match(
    unreachable.stderr,
    new RegExp(`Cannot reach the server at http://127.0.0.1:${closed}`),
  );
  assert.match(unreachable.stderr, /Is the server running, with serve\(\{ dashboard \}\)\?/);
});
