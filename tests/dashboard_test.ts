/**
 * The web dashboard in a real browser (Debian's Chromium, driven by playwright-core), and its
 * HTTP API's safety checks.
 *
 * The browser test is skipped, loudly, when no Chromium is found at `/usr/bin/chromium` (or
 * at `CHROMIUM_PATH`). To refresh the README's screenshot:
 *
 * ```sh
 * DASHBOARD_SCREENSHOT=docs/dashboard.png deno test -A tests/dashboard_test.ts
 * ```
 */
import assert from "node:assert/strict";
import { chromium, type Page } from "playwright-core";
import {
  connect,
  defineWorkflow,
  MemoryStore,
  remoteTasks,
  returns,
  serve,
  serverTasks,
  type WorkflowServer,
} from "../mod.ts";
import { relayRemote, relayServer } from "./_helpers/workflows.ts";
import { nextEvent } from "./_helpers/events.ts";

const BROWSER = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";
const hasBrowser = (() => {
  try {
    return Deno.statSync(BROWSER).isFile;
  } catch {
    return false;
  }
})();
if (!hasBrowser) {
  console.warn(
    `dashboard_test: SKIPPING the browser test: no Chromium at "${BROWSER}". Install it with ` +
      `"apt-get install -y chromium" (.ci/run does), or set CHROMIUM_PATH.`,
  );
}

const SCREENSHOT = Deno.env.get("DASHBOARD_SCREENSHOT");
/** Simulated work per task, so the README's screenshot shows a readable timeline. */
const PACE = SCREENSHOT ? 180 : 0;
const quiet = { progress: false } as const;
const XSS = `<img src=x onerror="window.__pwned = 1">`;

const pause = (ms: number) => ms > 0 ? new Promise((r) => setTimeout(r, ms)) : undefined;

/** Five tasks across both sides; `package` waits for the test to release it. */
const release = defineWorkflow("release", { version: 1 })
  .remote("checkout", { returns: returns<{ commit: string }>() })
  .server("build", { returns: returns<{ artifact: string }>() })
  .remote("test", { returns: returns<{ passed: number }>() })
  .server("package", { returns: returns<{ digest: string }>() })
  .remote("deploy");

const gates = new Map<string, () => void>();
const releaseServer = serverTasks(release, {
  build: async (_input, ctx) => {
    for (const step of [0.25, 0.5, 0.75]) {
      ctx.progress(step, `compiling ${Math.round(step * 4)}/4`);
      await pause(PACE / 3);
    }
    return { artifact: "app.tar" };
  },
  package: (_input, ctx) => {
    ctx.progress(0.6, "signing app.tar");
    return new Promise((resolve, reject) => {
      gates.set(ctx.key, () => resolve({ digest: "sha256:9f2c" }));
      ctx.signal.addEventListener("abort", () => reject(new Error("stopped")), { once: true });
    });
  },
});
const releaseRemote = remoteTasks(release, {
  checkout: async () => (await pause(PACE), { commit: "4be1d0c" }),
  test: async (_input, ctx) => {
    await pause(PACE * 2);
    if (ctx.key === "release/v1.3.8") throw new Error("2 of 412 tests failed: upload_test.ts");
    return { passed: 412 };
  },
  deploy: async () => void await pause(PACE),
});

/** A server task whose error message is HTML. */
const hostile = defineWorkflow("hostile", { version: 1 })
  .remote("prepare")
  .server("explode");
const hostileServer = serverTasks(hostile, {
  explode: () => {
    throw new Error(`bad input ${XSS} <script>window.__pwned = 2</script>`);
  },
});
const hostileRemote = remoteTasks(hostile, { prepare: () => {} });

/** Starts a release run and resolves once it waits in `package`. */
async function startRelease(server: WorkflowServer, key: string) {
  const waiting = nextEvent(
    server,
    (e) => e.key === key && e.type === "task.progress" && e.task === "package",
  );
  const run = connect({
    isolation: "none",
    address: server.address,
    key,
    tasks: releaseRemote,
    ...quiet,
  });
  const outcome = run.then(() => "completed", (error: Error) => error.message);
  await waiting;
  return { outcome, release: () => gates.get(key)!() };
}

const task = (page: Page, name: string, status: string) =>
  page.locator(`#timeline li[data-task="${name}"][data-status="${status}"]`);
const runStatus = (page: Page, status: string) =>
  page.locator("#run-status .badge", { hasText: status });
const row = (page: Page, key: string) =>
  page.locator("#runs-body tr").filter({ has: page.getByText(key, { exact: true }) });

Deno.test({
  name: "dashboard: a run goes from running to completed without reload, escaped and cancellable",
  ignore: !hasBrowser,
  async fn() {
    const folder = await Deno.makeTempDir({ prefix: "workflow_dashboard_" });
    const server = await serve({
      workflows: [releaseServer, hostileServer, relayServer],
      store: new MemoryStore(),
      port: 0,
      dashboard: { port: 0 },
      ...quiet,
    });
    const browser = await chromium.launch({ executablePath: BROWSER, args: ["--no-sandbox"] });
    try {
      const done = await startRelease(server, "release/v1.3.9");
      done.release();
      assert.equal(await done.outcome, "completed");
      await connect({
        isolation: "none",
        address: server.address,
        key: "relay/nightly",
        tasks: relayRemote,
        ...quiet,
      });
      await assert.rejects(
        connect({
          isolation: "none",
          address: server.address,
          key: "release/v1.3.8",
          tasks: releaseRemote,
          ...quiet,
        }),
        /2 of 412 tests failed/,
      );

      const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
      page.setDefaultTimeout(10_000);
      const problems: string[] = [];
      page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
      page.on("console", (message) => {
        if (message.type() === "error") problems.push(`console: ${message.text()}`);
      });
      const response = await page.goto(server.dashboardUrl!);
      assert.match(response?.headers()["content-security-policy"] ?? "", /script-src 'nonce-/);
      await row(page, "release/v1.3.9").waitFor();
      await page.evaluate(() => Object.assign(globalThis, { __loadedOnce: true }));

      // A run that starts after the page loaded appears in the list, live.
      const live = await startRelease(server, "release/v1.4.0");
      await row(page, "release/v1.4.0").click();
      await runStatus(page, "running").waitFor();
      await task(page, "build", "completed").waitFor();
      const packaging = task(page, "package", "running");
      await packaging.waitFor();
      assert.match(await packaging.innerText(), /60%\s+signing app\.tar/);
      assert.match(await packaging.innerText(), /SERVER/i);
      assert.equal(await task(page, "deploy", "pending").count(), 1);
      assert.match(await page.locator("#run-meta").innerText(), /release v1 · 3\/5 tasks/);

      const shot = `${folder}/dashboard.png`;
      await page.screenshot({ path: shot });
      assert.ok((await Deno.stat(shot)).size > 10_000);
      if (SCREENSHOT) {
        const bottom = await page.locator("main").evaluate((main) =>
          main.getBoundingClientRect().bottom
        );
        await page.screenshot({
          path: SCREENSHOT,
          clip: { x: 0, y: 0, width: 1280, height: bottom },
        });
      }

      live.release();
      await runStatus(page, "completed").waitFor();
      await task(page, "deploy", "completed").waitFor();
      assert.equal(await live.outcome, "completed");
      assert.match(await row(page, "release/v1.4.0").innerText(), /completed\s+5\/5/);
      assert.equal(await page.evaluate(() => "__loadedOnce" in globalThis), true, "reloaded");

      // Run data that is HTML is shown as text: no element is made from it, no script runs.
      const hostileKey = `hostile/${XSS}`;
      await assert.rejects(
        connect({
          isolation: "none",
          address: server.address,
          key: hostileKey,
          tasks: hostileRemote,
          ...quiet,
        }),
      );
      await row(page, hostileKey).click();
      await runStatus(page, "failed").waitFor();
      const error = task(page, "explode", "failed").locator("pre.error");
      assert.match(await error.innerText(), /bad input <img src=x onerror="window\.__pwned = 1">/);
      assert.match(await error.innerText(), /<script>window\.__pwned = 2<\/script>/);
      assert.equal(await page.locator("#run-key").innerText(), hostileKey);
      assert.equal(await page.locator("img, main script").count(), 0);
      assert.equal(await page.evaluate(() => "__pwned" in globalThis), false);

      // The cancel button cancels a run in flight.
      const doomed = await startRelease(server, "release/v1.5.0-rc1");
      await row(page, "release/v1.5.0-rc1").click();
      await task(page, "package", "running").waitFor();
      page.once("dialog", (dialog) => dialog.accept());
      await page.locator("#cancel").click();
      await runStatus(page, "cancelled").waitFor();
      assert.match(await doomed.outcome, /cancel/i);
      assert.equal((await server.run("release/v1.5.0-rc1"))?.status, "cancelled");
      assert.equal(await page.locator("#cancel").isVisible(), false);

      // On a phone the run's timeline goes below the list, and nothing overflows sideways.
      await page.setViewportSize({ width: 390, height: 844 });
      await row(page, "release/v1.4.0").click();
      await runStatus(page, "completed").waitFor();
      const [list, detail] = await Promise.all([
        page.locator("section").nth(0).boundingBox(),
        page.locator("section").nth(1).boundingBox(),
      ]);
      assert.ok(list && detail && detail.y >= list.y + list.height, "stacked on a phone");
      assert.ok(
        await page.evaluate("document.documentElement.scrollWidth <= innerWidth"),
        "no sideways scrolling on a phone",
      );
      await page.screenshot({ path: `${folder}/phone.png`, fullPage: true });

      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
      await server.shutdown({ grace: 0 });
      await Deno.remove(folder, { recursive: true });
    }
  },
});

/** Sends one raw HTTP/1.1 request (to set headers fetch will not) and returns the status. */
async function rawStatus(port: number, request: string): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(request));
    const buffer = new Uint8Array(1024);
    const read = await conn.read(buffer);
    const head = new TextDecoder().decode(buffer.subarray(0, read ?? 0));
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  } finally {
    conn.close();
  }
}

Deno.test("dashboard: the API refuses what it must, and event streams end at shutdown", async () => {
  const server = await serve({
    workflows: relayServer,
    store: new MemoryStore(),
    port: 0,
    dashboard: { port: 0 },
    ...quiet,
  });
  let shutDown = false;
  try {
    await connect({
      isolation: "none",
      address: server.address,
      key: "relay/a b/ü",
      tasks: relayRemote,
      ...quiet,
    });
    const base = server.dashboardUrl!;
    const port = Number(new URL(base).port);
    const get = async (path: string) => {
      const response = await fetch(new URL(path, base));
      return { status: response.status, body: await response.json() };
    };

    const page = await fetch(base);
    const csp = page.headers.get("content-security-policy") ?? "";
    assert.match(csp, /default-src 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
    assert.ok(nonce && (await page.text()).includes(`<script nonce="${nonce}">`));
    assert.equal(page.headers.get("x-frame-options"), "DENY");

    const one = await get(`/api/runs/${encodeURIComponent("relay/a b/ü")}`);
    assert.equal(one.status, 200);
    assert.equal(one.body.key, "relay/a b/ü");
    assert.equal(one.body.status, "completed");
    assert.equal((await get("/api/runs/%E0%A4%A")).status, 400);
    assert.equal((await get("/api/runs/no%2Fsuch")).status, 404);
    assert.equal((await get("/api/runs?status=done")).status, 400);
    assert.equal((await get("/api/runs?limit=5000")).status, 400);
    assert.deepEqual((await get("/api/runs?prefix=relay/")).body.runs.length, 1);
    assert.equal((await get("/api/nothing")).status, 404);

    const cancel = `/api/runs/${encodeURIComponent("relay/a b/ü")}/cancel`;
    const post = async (headers: Record<string, string>) => {
      const response = await fetch(new URL(cancel, base), { method: "POST", headers });
      await response.body?.cancel();
      return response.status;
    };
    assert.equal(await post({}), 403, "no custom header");
    assert.equal(await post({ "x-workflow-request": "1", origin: "https://evil.example" }), 403);
    assert.equal(await post({ "x-workflow-request": "1", origin: base.slice(0, -1) }), 409);
    assert.equal((await fetch(new URL(cancel, base))).status, 405);

    // DNS rebinding: a page of another site that resolves to 127.0.0.1 sends its own Host.
    assert.equal(
      await rawStatus(port, "GET /api/runs HTTP/1.1\r\nHost: evil.example\r\n\r\n"),
      421,
    );
    assert.equal(
      await rawStatus(port, `GET /api/runs HTTP/1.1\r\nHost: localhost:${port}\r\n\r\n`),
      200,
    );

    // An open event stream delivers events, and ends when the server shuts down.
    const stream = await fetch(new URL("/api/events", base));
    assert.equal(stream.headers.get("content-type"), "text/event-stream; charset=utf-8");
    const reader = stream.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const started = connect({
      isolation: "none",
      address: server.address,
      key: "relay/b",
      tasks: relayRemote,
      ...quiet,
    });
    while (!text.includes('"type":"run.completed"')) {
      const chunk = await reader.read();
      assert.ok(!chunk.done, "the stream ended early");
      text += chunk.value;
    }
    await started;
    const events = text.split("\n").filter((l) => l.startsWith("data: ")).map((l) =>
      JSON.parse(l.slice(6))
    );
    assert.deepEqual(events[0], { ...events[0], type: "run.started", key: "relay/b" });
    const closing = server.shutdown({ grace: 0 });
    shutDown = true;
    while (!(await reader.read()).done) { /* drain */ }
    await closing;
  } finally {
    if (!shutDown) await server.shutdown({ grace: 0 });
  }
});

Deno.test("dashboard: serve() fails, naming the address, when the dashboard's port is taken", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = taken.addr.port;
  await assert.rejects(
    serve({
      workflows: relayServer,
      store: new MemoryStore(),
      port: 0,
      dashboard: { port },
      ...quiet,
    }),
    new RegExp(`Cannot serve the dashboard on 127\\.0\\.0\\.1:${port}: .*in use`, "i"),
  );
  await assert.rejects(
    serve({ workflows: relayServer, store: new MemoryStore(), port: 0, dashboard: { port: -1 } }),
    RangeError,
  );
});
