/**
 * The builder's run-time checks: names, options, fingerprints, definition differences and
 * the implementations each side supplies.
 */
import assert from "node:assert/strict";
import { defineWorkflow, remoteTasks, returns, serverTasks, WorkflowError } from "../mod.ts";
import { firstDifference } from "../workflow/definition.ts";

const base = () =>
  defineWorkflow("orders", { version: 2 })
    .remote("fetch", { returns: returns<{ id: number }>() })
    .server("store", { returns: returns<{ ok: boolean }>() })
    .remote("notify");

function assertInvalidImplementation(fn: () => unknown, ...texts: string[]): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof WorkflowError, `not a WorkflowError: ${error}`);
    assert.equal(error.code, "InvalidImplementation");
    for (const text of texts) {
      assert.ok(error.message.includes(text), `${error.message} lacks ${text}`);
    }
    return true;
  });
}

Deno.test("defineWorkflow() and its builder check names and options", async (t) => {
  await t.step("invalid workflow and task names are a TypeError", () => {
    for (const name of ["", "-lead", ".x", "has space", "a/b", "é", "x".repeat(129), 42]) {
      assert.throws(() => defineWorkflow(name as string, { version: 1 }), TypeError, String(name));
      assert.throws(() => base().server(name as string), TypeError, String(name));
      assert.throws(() => base().remote(name as string), TypeError, String(name));
    }
    for (const name of ["a", "9", "A.b_c:d-e", "x".repeat(128)]) {
      assert.equal(defineWorkflow(name, { version: 1 }).remote(name).tasks[0].name, name);
    }
  });

  await t.step("a task name declared twice is a TypeError", () => {
    const workflow = base();
    assert.throws(
      () => workflow.server("fetch" as never),
      { name: "TypeError", message: 'Cannot declare task "fetch" twice in workflow "orders"' },
    );
    assert.throws(() => workflow.remote("store" as never), /"store" twice/);
  });

  await t.step("retry, timeout, heartbeat and version values are checked", () => {
    const bad: Array<[() => unknown, RegExp]> = [
      [
        () => base().server("x", { retry: { maxAttempts: 0 } }),
        /retry\.maxAttempts of task "x".*>= 1, got 0/,
      ],
      [() => base().server("x", { retry: { maxAttempts: 1.5 } }), /retry\.maxAttempts/],
      [
        () => base().server("x", { retry: { initialDelay: -1 } }),
        /retry\.initialDelay of task "x"/,
      ],
      [() => base().server("x", { retry: { maxDelay: NaN } }), /retry\.maxDelay of task "x"/],
      [() => base().remote("x", { timeout: -5 }), /timeout of task "x".*got -5/],
      [() => base().remote("x", { timeout: Infinity }), /timeout of task "x"/],
      [() => base().remote("x", { heartbeat: 0.5 }), /heartbeat of task "x"/],
      [() => defineWorkflow("w", { version: 0 }), /version of workflow "w"/],
      [() => defineWorkflow("w", { version: 2 ** 32 }), /at most 2\^32-1/],
    ];
    for (const [fn, message] of bad) {
      assert.throws(fn, (e: unknown) => e instanceof RangeError && message.test(e.message));
    }
    const task = base().server("x", { retry: { maxAttempts: 3 }, timeout: 100 }).task("x")!;
    assert.deepEqual(task.retry, { maxAttempts: 3, initialDelay: 200, maxDelay: 30_000 });
    assert.equal(task.timeout, 100);
    assert.equal(task.index, 3);
  });
});

Deno.test("Workflow.fingerprint is stable and follows name, version, order and side", () => {
  const fingerprint = base().fingerprint;
  assert.match(fingerprint, /^[0-9a-f]{64}$/);
  assert.equal(base().fingerprint, fingerprint);
  // Options other than names and sides do not change it.
  const withOptions = defineWorkflow("orders", { version: 2 })
    .remote("fetch", { timeout: 10, description: "get it" })
    .server("store", { retry: { maxAttempts: 4 } })
    .remote("notify");
  assert.equal(withOptions.fingerprint, fingerprint);
  const variants = {
    name: defineWorkflow("orders2", { version: 2 }).remote("fetch").server("store").remote(
      "notify",
    ),
    version: defineWorkflow("orders", { version: 3 }).remote("fetch").server("store").remote(
      "notify",
    ),
    order: defineWorkflow("orders", { version: 2 }).server("store").remote("fetch").remote(
      "notify",
    ),
    side: defineWorkflow("orders", { version: 2 }).remote("fetch").server("store").server("notify"),
    missing: defineWorkflow("orders", { version: 2 }).remote("fetch").server("store"),
  };
  const seen = new Set([fingerprint]);
  for (const [what, workflow] of Object.entries(variants)) {
    assert.ok(!seen.has(workflow.fingerprint), `changing the ${what} kept the fingerprint`);
    seen.add(workflow.fingerprint);
  }
});

Deno.test("firstDifference() names the first difference", () => {
  const ours = base();
  const like = (name: string, version: number, tasks: Array<[string, "server" | "remote"]>) => ({
    name,
    version,
    tasks: tasks.map(([name, side]) => ({ name, side })),
  });
  const cases: Array<[ReturnType<typeof like>, string | undefined]> = [
    [
      like("orders", 2, [["fetch", "remote"], ["store", "server"], ["notify", "remote"]]),
      undefined,
    ],
    [like("sales", 9, [["other", "server"]]), 'name "sales" instead of "orders"'],
    [like("orders", 1, [["fetch", "remote"]]), "version 1 instead of 2"],
    [
      like("orders", 2, [["fetch", "remote"], ["save", "server"], ["notify", "remote"]]),
      'task 2 is "save" instead of "store"',
    ],
    [
      like("orders", 2, [["fetch", "remote"], ["store", "remote"], ["notify", "server"]]),
      'task 2 "store" runs on the remote instead of the server',
    ],
    [
      like("orders", 2, [["fetch", "remote"], ["store", "server"]]),
      'task 3 "notify" (remote) is missing',
    ],
    [
      like("orders", 2, [["fetch", "remote"], ["store", "server"], ["notify", "remote"], [
        "extra",
        "server",
      ]]),
      'task 4 "extra" is not in the server\'s definition',
    ],
  ];
  for (const [theirs, expected] of cases) assert.equal(firstDifference(ours, theirs), expected);
});

Deno.test("serverTasks()/remoteTasks() refuse missing and extra implementations", async (t) => {
  const workflow = base();
  const fetch = () => ({ id: 1 });
  const store = () => ({ ok: true });

  await t.step("complete implementations are accepted", () => {
    assert.equal(serverTasks(workflow, { store }).side, "server");
    const remote = remoteTasks(workflow, { fetch, notify: { run: () => {} } });
    assert.equal(typeof remote.hooks("notify").run, "function");
    assertInvalidImplementation(() => remote.hooks("store"), '"store"', "no remote implementation");
  });
  await t.step("a missing implementation", () => {
    assertInvalidImplementation(
      () => serverTasks(workflow, {} as never),
      '"store" has no implementation',
    );
    assertInvalidImplementation(
      () => remoteTasks(workflow, { fetch } as never),
      'remote tasks of workflow "orders"',
      '"notify" has no implementation',
    );
    assertInvalidImplementation(
      () => remoteTasks(workflow, { fetch, notify: { validate: () => undefined } } as never),
      '"notify" has no implementation',
    );
  });
  await t.step("an implementation of the other side's task, or of no task", () => {
    assertInvalidImplementation(
      () => serverTasks(workflow, { store, fetch } as never),
      '"fetch" runs on the remote, not the server',
    );
    assertInvalidImplementation(
      () => remoteTasks(workflow, { fetch, notify: () => {}, store } as never),
      '"store" runs on the server, not the remote',
    );
    assertInvalidImplementation(
      () => serverTasks(workflow, { store, ghost: () => 1 } as never),
      '"ghost" is not a task of the definition',
    );
  });
});
