/**
 * One contract suite for every run store (memory, SQLite, and MongoDB when `MONGODB_URL` is
 * set), the SQLite store's own guarantees (files, processes, crashes), and the remote's local
 * stores.
 *
 * To run the MongoDB contract, point `MONGODB_URL` at a server you may write to; the suite
 * works in a fresh database it drops afterwards:
 *
 *     MONGODB_URL=mongodb://127.0.0.1:27017 deno test -A tests/store_contract_test.ts
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { MongoClient } from "mongodb";
import { MemoryStore, type RunStore } from "../server/store.ts";
import { SQLiteStore } from "../server/sqlite_store.ts";
import { MongoStore, type RunDocument } from "../server/mongo_store.ts";
import { type LocalStore, MemoryLocalStore, SQLiteLocalStore } from "../client/local_store.ts";
import { ErrorCode, WorkflowError } from "../workflow/errors.ts";
import { RECORD_SCHEMA, type RunRecord, type RunStatus, summarize } from "../workflow/state.ts";
import { spawnDeno } from "./_helpers/process.ts";

const ROOT = new URL("../", import.meta.url);

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

function makeRecord(key: string, changes: Partial<RunRecord> = {}): RunRecord {
  return {
    schema: RECORD_SCHEMA,
    key,
    definition: { name: "dh-secret", version: 3, fingerprint: "f1ae" },
    status: "running",
    tasks: [
      { name: "prime", side: "server", status: "completed", attempts: 1, startedAt: 10 },
      {
        name: "exchange",
        side: "remote",
        status: "running",
        attempts: 2,
        startedAt: 20,
        error: { code: "TaskTimeout", message: "no heartbeat for 30 s" },
        progress: { fraction: 0.25, note: "a quarter" },
      },
      { name: "agree", side: "server", status: "pending", attempts: 0 },
    ],
    outputs: { prime: new Uint8Array([1, 2, 3, 255]), "odd name ✓": new Uint8Array(0) },
    local: { x: new Uint8Array([9, 8, 7]) },
    createdAt: 1_700_000_000_000,
    updatedAt: 1_700_000_000_500,
    version: 1,
    ...changes,
  };
}

/** `record` at the next version, changed by `change`. */
function next(record: RunRecord, change: (record: RunRecord) => void = () => {}): RunRecord {
  const copy = structuredClone(record);
  change(copy);
  copy.version = record.version + 1;
  copy.updatedAt = record.updatedAt + 1;
  return copy;
}

function isConflict(error: unknown): boolean {
  return error instanceof WorkflowError && error.code === ErrorCode.Conflict;
}

async function assertConflict(promise: Promise<unknown>, key: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isConflict(error), `expected a Conflict, got ${error}`);
    assert.equal((error as WorkflowError).key, key);
    assert.match((error as Error).message, new RegExp(`"${key}"`));
    return true;
  });
}

/** Load, change, save; again on a lost compare-and-set. Returns the attempts it took. */
async function update(
  store: RunStore,
  key: string,
  change: (record: RunRecord) => void,
  onLoad: (record: RunRecord) => void = () => {},
): Promise<number> {
  for (let attempt = 1;; attempt++) {
    const record = await store.load(key);
    assert.ok(record, `run "${key}" vanished`);
    onLoad(record);
    try {
      await store.save(next(record, change));
      return attempt;
    } catch (error) {
      if (!isConflict(error)) throw error;
    }
  }
}

/** Bytes that differ from one position to the next, without a random source. */
function pattern(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  let state = seed * 2654435761 >>> 0;
  for (let i = 0; i < length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------
// The run store contract
// ---------------------------------------------------------------------------------------

interface Harness {
  /** A new, empty store. */
  open(): Promise<RunStore>;
  /** Makes a stored run look as if a newer release saved it (raw access), when possible. */
  setStoredSchema?(store: RunStore, key: string, schema: number): Promise<void>;
}

async function runStoreContract(t: Deno.TestContext, harness: Harness): Promise<void> {
  const step = (name: string, fn: (store: RunStore) => Promise<void>) =>
    t.step(name, async () => {
      const store = await harness.open();
      try {
        await fn(store);
      } finally {
        await store.close();
      }
    });

  await step("save() then load() round-trips a full record exactly", async (store) => {
    const record = makeRecord("dh-secret/alice", {
      status: "failed",
      error: { code: "RunFailed", message: "agree failed: ünïcödé 🎉", task: "agree" },
      principal: "CN=alice,O=Tradeline",
    });
    await store.save(record);
    const loaded = await store.load("dh-secret/alice");
    assert.deepStrictEqual(loaded, record);
    assert.ok(loaded!.outputs.prime instanceof Uint8Array);
    assert.equal(Object.getPrototypeOf(loaded!.outputs.prime), Uint8Array.prototype);
    // What was saved is a copy: changing either object afterwards changes nothing stored.
    record.outputs.prime[0] = 99;
    loaded!.local.x[0] = 99;
    assert.deepStrictEqual((await store.load("dh-secret/alice"))!.outputs.prime[0], 1);
    assert.deepStrictEqual((await store.load("dh-secret/alice"))!.local.x[0], 9);
    assert.equal(await store.load("dh-secret/nobody"), undefined);
  });

  await step("save() is a compare-and-set on the version", async (store) => {
    const key = "cas/1";
    const v1 = makeRecord(key);
    await store.save(v1);
    // A second insert loses, and changes nothing.
    await assertConflict(store.save(makeRecord(key, { status: "cancelled" })), key);
    assert.deepStrictEqual(await store.load(key), v1);

    const v2 = next(v1, (r) => r.tasks[1].attempts = 3);
    await store.save(v2);
    // A write based on v1 (stale) loses, and changes nothing.
    const stale = next(v1, (r) => r.status = "cancelled");
    await assertConflict(store.save(stale), key);
    assert.deepStrictEqual(await store.load(key), v2);
    // So does a write that skips a version.
    await assertConflict(store.save(next(next(v2))), key);
    // And a version that is not first, for a run that does not exist.
    await assertConflict(store.save(makeRecord("cas/none", { version: 2 })), "cas/none");
    assert.equal(await store.load("cas/none"), undefined);

    const v3 = next(v2, (r) => r.status = "completed");
    await store.save(v3);
    assert.deepStrictEqual(await store.load(key), v3);
  });

  await step("list() filters by status, definition and key prefix, in key order", async (store) => {
    const records = [
      makeRecord("b/2", { status: "completed" }),
      makeRecord("a/1"),
      makeRecord("b/1", { definition: { name: "other", version: 1, fingerprint: "0" } }),
      makeRecord("b/10", { status: "failed" }),
      makeRecord("ba/1"),
      makeRecord("c", { status: "completed" }),
      makeRecord("b", { definition: { name: "other", version: 1, fingerprint: "0" } }),
    ];
    for (const record of records) await store.save(record);
    const keys = async (options: Parameters<RunStore["list"]>[0]) =>
      (await store.list(options)).map((run) => run.key);

    assert.deepStrictEqual(await keys({}), ["a/1", "b", "b/1", "b/10", "b/2", "ba/1", "c"]);
    assert.deepStrictEqual(await keys({ status: "completed" }), ["b/2", "c"]);
    assert.deepStrictEqual(await keys({ status: "cancelled" }), []);
    assert.deepStrictEqual(await keys({ definition: "other" }), ["b", "b/1"]);
    assert.deepStrictEqual(await keys({ keyPrefix: "b/" }), ["b/1", "b/10", "b/2"]);
    assert.deepStrictEqual(await keys({ keyPrefix: "b" }), ["b", "b/1", "b/10", "b/2", "ba/1"]);
    assert.deepStrictEqual(await keys({ keyPrefix: "b/", status: "running" }), ["b/1"]);
    assert.deepStrictEqual(await keys({ keyPrefix: "b/", definition: "dh-secret" }), [
      "b/10",
      "b/2",
    ]);
    assert.deepStrictEqual(await keys({ keyPrefix: "zz" }), []);
    assert.deepStrictEqual(await keys({ status: "running", definition: "dh-secret" }), [
      "a/1",
      "ba/1",
    ]);
    // The summaries are those of the records.
    const byKey = new Map(records.map((r) => [r.key, summarize(r)]));
    for (const run of await store.list()) assert.deepStrictEqual(run, byKey.get(run.key));
  });

  await step("list() pages with after and limit", async (store) => {
    const keys = Array.from({ length: 11 }, (_, i) => `page/${String(i).padStart(2, "0")}`);
    for (const key of [...keys].reverse()) await store.save(makeRecord(key));
    await store.save(makeRecord("other/1"));

    const seen: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 10; page++) {
      const runs = await store.list({ keyPrefix: "page/", after, limit: 4 });
      assert.ok(runs.length <= 4);
      if (runs.length === 0) break;
      seen.push(...runs.map((run) => run.key));
      after = runs.at(-1)!.key;
    }
    assert.deepStrictEqual(seen, keys);
    assert.deepStrictEqual((await store.list({ after: "page/09" })).map((r) => r.key), [
      "page/10",
    ]);
    assert.equal((await store.list()).length, 12, "the default limit is 100");
    assert.deepStrictEqual((await store.list({ limit: 1 })).map((r) => r.key), ["other/1"]);
  });

  await step("a run whose outputs total over 1 MiB round-trips", async (store) => {
    const key = "big/1";
    const v1 = makeRecord(key, {
      outputs: { a: pattern(600 * 1024, 1), b: pattern(600 * 1024, 2) },
    });
    await store.save(v1);
    assert.deepStrictEqual(await store.load(key), v1);
    const v2 = next(v1, (r) => r.outputs.c = pattern(1024 * 1024 + 1, 3));
    await store.save(v2);
    const loaded = (await store.load(key))!;
    assert.deepStrictEqual(loaded, v2);
    const total = Object.values(loaded.outputs).reduce((sum, bytes) => sum + bytes.length, 0);
    assert.ok(total > 2 * 1024 * 1024);
  });

  await step(
    "concurrent writers: status never goes backwards, no update is lost",
    async (store) => {
      const key = "race/1";
      const writers = 200;
      await store.save(makeRecord(key, {
        tasks: [{
          name: "work",
          side: "remote",
          status: "running",
          attempts: 1,
          progress: { fraction: 0, note: "0" },
        }],
        local: { applied: new Uint8Array(writers / 8) },
      }));
      // Every version any writer loaded, and its status: a history to check afterwards.
      const history = new Map<number, RunStatus>();
      const observe = (record: RunRecord) => {
        const known = history.get(record.version);
        assert.ok(known === undefined || known === record.status, "one version, two statuses");
        history.set(record.version, record.status);
      };
      const progress = (i: number) =>
        update(store, key, (record) => {
          // A progress update never touches the run's status.
          const task = record.tasks[0];
          const count = Number(task.progress!.note) + 1;
          task.progress = { fraction: count / writers, note: String(count) };
          record.local.applied[i >> 3] |= 1 << (i & 7);
        }, observe);
      const complete = () =>
        update(store, key, (record) => {
          record.status = "completed";
          record.tasks[0].status = "completed";
        }, observe);

      const racing: Promise<number>[] = [];
      for (let i = 0; i < writers; i++) {
        if (i === writers / 2) racing.push(complete());
        racing.push(progress(i));
      }
      const attempts = await Promise.all(racing);

      const final = (await store.load(key))!;
      observe(final);
      assert.equal(final.status, "completed");
      assert.equal(final.tasks[0].status, "completed");
      assert.equal(final.tasks[0].progress!.note, String(writers), "a progress update was lost");
      assert.deepStrictEqual(final.local.applied, new Uint8Array(writers / 8).fill(255));
      assert.equal(final.version, 1 + writers + 1);
      assert.ok(attempts.some((n) => n > 1), "the writers never actually raced");
      const versions = [...history.keys()].sort((a, b) => a - b);
      const completedAt = versions.find((v) => history.get(v) === "completed")!;
      for (const version of versions) {
        assert.equal(history.get(version), version >= completedAt ? "completed" : "running");
      }
    },
  );

  await t.step({
    name: "a record of a newer schema is refused with a clear error",
    ignore: harness.setStoredSchema === undefined,
    fn: async () => {
      const store = await harness.open();
      try {
        await store.save(makeRecord("future/1"));
        await harness.setStoredSchema!(store, "future/1", RECORD_SCHEMA + 1);
        await assert.rejects(store.load("future/1"), (error: unknown) => {
          assert.ok(error instanceof WorkflowError);
          assert.equal(error.key, "future/1");
          assert.match(error.message, /"future\/1"/);
          assert.match(error.message, new RegExp(`schema ${RECORD_SCHEMA + 1}`));
          assert.match(error.message, /[Uu]pgrade @tradeline\/workflow/);
          return true;
        });
        // Listing still works: the summary needs no decoding.
        assert.deepStrictEqual((await store.list()).map((r) => r.key), ["future/1"]);
      } finally {
        await store.close();
      }
    },
  });

  await t.step("close() twice is harmless", async () => {
    const store = await harness.open();
    await store.close();
    await store.close();
    await store[Symbol.asyncDispose]();
  });
}

Deno.test("RunStore contract: MemoryStore", async (t) => {
  await runStoreContract(t, { open: () => Promise.resolve(new MemoryStore()) });
});

Deno.test("RunStore contract: SQLiteStore", async (t) => {
  const folder = await Deno.makeTempDir({ prefix: "store_contract_" });
  let files = 0;
  try {
    await runStoreContract(t, {
      open: () => Promise.resolve(new SQLiteStore({ path: `${folder}/runs-${files++}.db` })),
      setStoredSchema: (store, key, schema) => {
        const db = new DatabaseSync((store as SQLiteStore).path);
        try {
          db.prepare("UPDATE runs SET schema = ? WHERE key = ?").run(schema, key);
        } finally {
          db.close();
        }
        return Promise.resolve();
      },
    });
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});

const MONGODB_URL = Deno.env.get("MONGODB_URL");
if (!MONGODB_URL) {
  console.warn(
    "\n!!! MongoDB store contract SKIPPED: MONGODB_URL is not set. To run it, point it at a " +
      "server you may write to (the suite uses a fresh database and drops it):\n" +
      "!!!   MONGODB_URL=mongodb://127.0.0.1:27017 deno test -A tests/store_contract_test.ts\n",
  );
}

Deno.test({
  name: "RunStore contract: MongoStore (needs MONGODB_URL)",
  ignore: !MONGODB_URL,
  // The driver may finish closing its sockets and monitors after close() resolves.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const database = `workflow_contract_${crypto.randomUUID().slice(0, 8)}`;
    const admin = await MongoClient.connect(MONGODB_URL!);
    let collections = 0;
    try {
      await runStoreContract(t, {
        open: () =>
          MongoStore.connect(MONGODB_URL!, { database, collection: `runs_${collections++}` }),
        setStoredSchema: async (_store, key, schema) => {
          // Every store of this harness writes to the newest collection.
          const runs = admin.db(database).collection<RunDocument>(`runs_${collections - 1}`);
          const result = await runs.updateOne({ _id: key }, { $set: { schema } });
          assert.equal(result.matchedCount, 1);
        },
      });
    } finally {
      await admin.db(database).dropDatabase();
      await admin.close();
    }
  },
});

// ---------------------------------------------------------------------------------------
// What only the SQLite store does: files, several connections, processes
// ---------------------------------------------------------------------------------------

Deno.test("SQLiteStore keeps files, shares them and survives crashes", async (t) => {
  const folder = await Deno.makeTempDir({ prefix: "sqlite_store_" });
  try {
    await t.step("runs survive close and reopen", async () => {
      const path = `${folder}/reopen.db`;
      const record = makeRecord("keep/1", { outputs: { big: pattern(70_000, 4) } });
      {
        await using store = new SQLiteStore({ path });
        await store.save(record);
      }
      await using store = new SQLiteStore({ path });
      assert.deepStrictEqual(await store.load("keep/1"), record);
      await store.save(next(record));
      assert.equal((await store.list())[0].key, "keep/1");
    });

    await t.step(
      "two stores on one file see each other's writes and CAS between them",
      async () => {
        const path = `${folder}/shared.db`;
        await using a = new SQLiteStore({ path });
        await using b = new SQLiteStore({ path, durability: "normal" });
        const v1 = makeRecord("shared/1");
        await a.save(v1);
        assert.deepStrictEqual(await b.load("shared/1"), v1);
        const v2 = next(v1, (r) => r.status = "completed");
        await b.save(v2);
        assert.deepStrictEqual(await a.load("shared/1"), v2);
        await assertConflict(a.save(next(v1, (r) => r.status = "failed")), "shared/1");
        await assertConflict(a.save(makeRecord("shared/1")), "shared/1");
        assert.deepStrictEqual(await b.load("shared/1"), v2);
        assert.deepStrictEqual((await a.list({ status: "completed" })).map((r) => r.key), [
          "shared/1",
        ]);
      },
    );

    await t.step("both durability levels are accepted, and nothing else", async () => {
      for (const durability of ["full", "normal"] as const) {
        await using store = new SQLiteStore({ path: `${folder}/${durability}.db`, durability });
        await store.save(makeRecord("d/1"));
        assert.ok(await store.load("d/1"));
      }
      assert.throws(
        () => new SQLiteStore({ path: `${folder}/bad.db`, durability: "off" as "full" }),
        RangeError,
      );
      await using memory = new SQLiteStore({ path: ":memory:" });
      await memory.save(makeRecord("m/1"));
      assert.equal(memory.path, ":memory:");
    });

    await t.step("missing folders are created", async () => {
      const path = `${folder}/does/not/exist/yet/runs.db`;
      await using store = new SQLiteStore({ path });
      await store.save(makeRecord("deep/1"));
      assert.equal(store.path, path);
      assert.ok((await Deno.stat(path)).isFile);
    });

    await t.step("a file that cannot be opened fails with an error naming it", async () => {
      const notDb = `${folder}/not-a-database.db`;
      await Deno.writeTextFile(notDb, "this is not a SQLite file, it is just text ".repeat(50));
      assert.throws(
        () => new SQLiteStore({ path: notDb }),
        (error: Error) => error.message.includes(`"${notDb}"`),
      );
      const blocker = `${folder}/a-file`;
      await Deno.writeTextFile(blocker, "");
      assert.throws(
        () => new SQLiteStore({ path: `${blocker}/runs.db` }),
        (error: Error) => error.message.includes(`"${blocker}/runs.db"`),
      );
    });

    await t.step("a file of a newer table layout is refused, untouched", async () => {
      const path = `${folder}/newer.db`;
      {
        await using store = new SQLiteStore({ path });
        await store.save(makeRecord("n/1"));
      }
      const db = new DatabaseSync(path);
      db.exec("PRAGMA user_version = 99");
      db.close();
      assert.throws(() => new SQLiteStore({ path }), /newer release.*layout 99.*Upgrade/s);
      const check = new DatabaseSync(path);
      assert.deepStrictEqual({ ...check.prepare("PRAGMA user_version").get() }, {
        user_version: 99,
      });
      check.close();
    });

    await t.step("use after close() fails clearly", async () => {
      const store = new SQLiteStore({ path: `${folder}/closed.db` });
      await store.close();
      await store.close();
      await assert.rejects(store.load("x"), /closed/);
      await assert.rejects(store.save(makeRecord("x")), /closed/);
    });

    await t.step("two processes share a file: CAS holds, nothing is lost", async () => {
      const path = `${folder}/processes.db`;
      const writes = 150;
      await using store = new SQLiteStore({ path, durability: "normal" });
      await store.save(makeRecord("proc/1", { local: { n: new Uint8Array(4) } }));
      const increment = (record: RunRecord) => {
        const view = new DataView(record.local.n.buffer);
        view.setUint32(0, view.getUint32(0) + 1);
      };
      await using child = spawnChild(
        folder,
        `
        const store = new SQLiteStore({ path: ${JSON.stringify(path)}, durability: "normal" });
        console.log("started");
        let conflicts = 0;
        for (let i = 0; i < ${writes}; i++) {
          for (;;) {
            const record = await store.load("proc/1");
            const view = new DataView(record.local.n.buffer);
            view.setUint32(0, view.getUint32(0) + 1);
            try {
              await store.save({ ...record, version: record.version + 1 });
              break;
            } catch (error) {
              if (error.code !== "Conflict") throw error;
              conflicts++;
            }
          }
        }
        console.log("done", conflicts);
        await store.close();
      `,
      );
      await child.waitFor(/^started$/);
      for (let i = 0; i < writes; i++) await update(store, "proc/1", increment);
      await child.waitFor(/^done \d+$/);
      assert.equal((await child.status).code, 0, child.lines.join("\n"));
      const final = (await store.load("proc/1"))!;
      assert.equal(new DataView(final.local.n.buffer).getUint32(0), 2 * writes);
      assert.equal(final.version, 1 + 2 * writes);
    });

    await t.step("a saved run and local data survive SIGKILL of the process", async () => {
      const runs = `${folder}/killed-runs.db`;
      const remote = `${folder}/killed-remote.db`;
      const record = makeRecord("killed/1", { outputs: { data: pattern(200_000, 5) } });
      await using child = spawnChild(
        folder,
        `
        const store = new SQLiteStore({ path: ${JSON.stringify(runs)}, durability: "normal" });
        const local = new SQLiteLocalStore({ path: ${
          JSON.stringify(remote)
        }, durability: "normal" });
        const record = ${recordSource(record)};
        await store.save(record);
        await local.set("killed/1", "x", new Uint8Array([4, 2]));
        console.log("saved");
        setInterval(() => {}, 1 << 30);
      `,
      );
      await child.waitFor(/^saved$/);
      child.kill("SIGKILL");
      assert.equal((await child.status).signal, "SIGKILL");
      await using store = new SQLiteStore({ path: runs });
      assert.deepStrictEqual(await store.load("killed/1"), record);
      await using local = new SQLiteLocalStore({ path: remote });
      assert.deepStrictEqual(await local.get("killed/1", "x"), new Uint8Array([4, 2]));
    });
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});

/** A child `deno run` of `body` (a script in `folder`), with the stores imported. */
function spawnChild(folder: string, body: string): ReturnType<typeof spawnDeno> {
  const file = Deno.makeTempFileSync({ dir: folder, prefix: "child_", suffix: ".ts" });
  Deno.writeTextFileSync(
    file,
    `import { SQLiteStore } from ${JSON.stringify(new URL("server/sqlite_store.ts", ROOT).href)};
import { SQLiteLocalStore } from ${JSON.stringify(new URL("client/local_store.ts", ROOT).href)};
${body}
`,
  );
  return spawnDeno(["-A", "--config", new URL("deno.json", ROOT).pathname, file], {
    cwd: new URL(".", ROOT).pathname,
  });
}

/** A record as TypeScript source, for a child process. */
function recordSource(record: RunRecord): string {
  return JSON.stringify(
    record,
    (_key, value) => value instanceof Uint8Array ? { $bytes: Array.from(value) } : value,
  ).replace(
    /\{"\$bytes":(\[[\d,]*\])\}/g,
    "new Uint8Array($1)",
  );
}

// ---------------------------------------------------------------------------------------
// The remote's local stores
// ---------------------------------------------------------------------------------------

async function runLocalStoreContract(
  t: Deno.TestContext,
  open: () => LocalStore,
): Promise<void> {
  await t.step("get() of nothing is undefined; set() then get() round-trips", async () => {
    const local = open();
    try {
      assert.equal(await local.get("run/1", "x"), undefined);
      const value = pattern(5000, 6);
      await local.set("run/1", "x", value);
      assert.deepStrictEqual(await local.get("run/1", "x"), value);
      await local.set("run/1", "empty", new Uint8Array(0));
      assert.deepStrictEqual(await local.get("run/1", "empty"), new Uint8Array(0));
      await local.set("run/1", "x", new Uint8Array([7]));
      assert.deepStrictEqual(await local.get("run/1", "x"), new Uint8Array([7]));
      // The store keeps its own copy.
      const mine = new Uint8Array([1, 2]);
      await local.set("run/1", "copy", mine);
      mine[0] = 9;
      (await local.get("run/1", "copy"))![1] = 9;
      assert.deepStrictEqual(await local.get("run/1", "copy"), new Uint8Array([1, 2]));
    } finally {
      await local.close();
    }
  });

  await t.step("runs are isolated by key, and clear() forgets one run only", async () => {
    const local = open();
    try {
      await local.set("run/1", "x", new Uint8Array([1]));
      await local.set("run/2", "x", new Uint8Array([2]));
      await local.set("run/10", "x", new Uint8Array([10]));
      assert.deepStrictEqual(await local.get("run/2", "x"), new Uint8Array([2]));
      await local.clear("run/1");
      assert.equal(await local.get("run/1", "x"), undefined);
      assert.deepStrictEqual(await local.get("run/2", "x"), new Uint8Array([2]));
      assert.deepStrictEqual(await local.get("run/10", "x"), new Uint8Array([10]));
      await local.clear("run/none");
    } finally {
      await local.close();
    }
  });

  await t.step("set() refuses a value that is not a Uint8Array", async () => {
    const local = open();
    try {
      await assert.rejects(local.set("run/1", "x", "text" as unknown as Uint8Array), TypeError);
    } finally {
      await local.close();
    }
  });
}

Deno.test("LocalStore contract: MemoryLocalStore", async (t) => {
  await runLocalStoreContract(t, () => new MemoryLocalStore());
});

Deno.test("LocalStore contract: SQLiteLocalStore", async (t) => {
  const folder = await Deno.makeTempDir({ prefix: "local_store_" });
  let files = 0;
  try {
    await runLocalStoreContract(t, () => new SQLiteLocalStore({ path: `${folder}/${files++}.db` }));

    await t.step("values survive close and reopen", async () => {
      const path = `${folder}/nested/remote.db`;
      {
        await using local = new SQLiteLocalStore({ path, durability: "normal" });
        await local.set("dh-secret/alice", "x", new Uint8Array([42, 0, 255]));
      }
      await using local = new SQLiteLocalStore({ path });
      assert.deepStrictEqual(await local.get("dh-secret/alice", "x"), new Uint8Array([42, 0, 255]));
    });

    await t.step("one file can hold a run store and a local store", async () => {
      const path = `${folder}/both.db`;
      await using store = new SQLiteStore({ path });
      await using local = new SQLiteLocalStore({ path });
      await store.save(makeRecord("both/1"));
      await local.set("both/1", "x", new Uint8Array([1]));
      assert.ok(await store.load("both/1"));
      assert.deepStrictEqual(await local.get("both/1", "x"), new Uint8Array([1]));
    });

    await t.step("use after close() fails clearly; close() twice is harmless", async () => {
      const local = new SQLiteLocalStore({ path: `${folder}/closed.db` });
      await local.close();
      await local.close();
      await assert.rejects(local.get("a", "b"), /closed/);
    });
  } finally {
    await Deno.remove(folder, { recursive: true });
  }
});
