/**
 * `deno task bench`: speed and scale of `@tradeline/workflow` against the physical floor of
 * this machine (a raw grpc-js round trip and a raw SQLite commit, measured in the same run)
 * and against a real peer (BullMQ on a local Redis).
 *
 * Usage: `deno task bench [--quick] [--json]`. Prints a markdown table on standard output;
 * with `--json`, one JSON object as the last line. Progress goes to standard error.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { cpus, freemem, release, totalmem } from "node:os";
import {
  concurrentCommits,
  frameSizes,
  groupedCommits,
  pingPong,
  RawTable,
  sqliteCommits,
} from "./baseline.ts";
import { SQLiteStore } from "../server/sqlite_store.ts";
import { recordSize, stepLatency, type StepResult } from "./steps.ts";
import { throughput, type ThroughputResult } from "./throughput.ts";
import { idleRemotes, type IdleResult } from "./idle.ts";
import { resumeCold, resumeLive } from "./resume.ts";
import { sandboxCost, type SandboxResult } from "./sandbox.ts";
import { bullmqSteps, type PeerResult } from "./bullmq.ts";
import { alternating, chain } from "./_workflows.ts";
import { fmt, round, type Summary } from "./_stats.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    quick: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
const quick = flags.quick!;

/** How much of each section to run. */
const PLAN = quick
  ? {
    pingPong: 2000,
    commits: 500,
    steps: 200,
    stepRuns: 1,
    tasksPerRun: 20,
    lanes: [[1, 10], [10, 4], [100, 1], [1000, 1]] as const,
    trials100: 1,
    idle: [1000],
    resumeLive: 50,
    resumeCold: 5,
    sandbox: 1,
    peer: 100,
  }
  : {
    pingPong: 5000,
    commits: 2000,
    steps: 200,
    stepRuns: 3,
    tasksPerRun: 20,
    lanes: [[1, 25], [10, 10], [100, 2], [1000, 1]] as const,
    trials100: 3,
    idle: [1000, 10_000],
    resumeLive: 200,
    resumeCold: 20,
    sandbox: 3,
    peer: 200,
  };

const log = (text: string) => console.error(`bench: ${text}`);
const errors: string[] = [];

/** Runs a section; a failure is reported in the table and the JSON, not thrown. */
async function section<T>(name: string, work: () => Promise<T> | T): Promise<T | undefined> {
  log(`${name}...`);
  const t0 = performance.now();
  try {
    const result = await work();
    log(`${name} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    return result;
  } catch (error) {
    const message = `${name}: ${(error as Error)?.stack ?? error}`;
    errors.push(message);
    log(`FAILED ${message}`);
    return undefined;
  }
}

function pool(results: StepResult[]): { step: Summary; stepsPerS: number } {
  // Every run's per-step samples are summarised by the run; the pooled figure is the median
  // run's (by p50), so one slow run does not hide in an average.
  const sorted = [...results].sort((a, b) => a.step.p50 - b.step.p50);
  const median = sorted[Math.floor(sorted.length / 2)];
  return { step: median.step, stepsPerS: median.stepsPerS };
}

const folder = await Deno.makeTempDir({ prefix: "workflow-bench-" });
const cleanups: (() => unknown)[] = [];
const started = performance.now();
try {
  // --- 1. Baselines ------------------------------------------------------------------------
  const sizes = frameSizes();
  const chainRecord = await section("record size", () => recordSize(chain(PLAN.steps)));
  const altRecord = await section(
    "record size (alternating)",
    () => recordSize(alternating(PLAN.tasksPerRun)),
  );
  const ping = await section("grpc-js ping-pong", () => pingPong(PLAN.pingPong, 500));
  // One raw table and one run store for the whole run, each warmed until its write-ahead log
  // has wrapped: commits then overwrite the log as on a long-lived server.
  const raw = new RawTable(`${folder}/raw.db`);
  const runs = new SQLiteStore({ path: `${folder}/runs.db` });
  cleanups.push(() => raw.close(), () => runs.close());
  await section("SQLite warm-up", () => raw.warm());
  const commit = await section(
    "SQLite commit",
    () => sqliteCommits(raw, chainRecord ?? 20_000, PLAN.commits),
  );

  // --- 2. Step latency ---------------------------------------------------------------------
  await section("warm-up", async () => {
    await stepLatency(PLAN.steps, "memory", "warm/m");
    for (let i = 0; i < 2; i++) await stepLatency(PLAN.steps, runs, `warm/s${i}`);
  });
  const memory = await section("step latency (memory store)", async () => {
    const results: StepResult[] = [];
    for (let i = 0; i < PLAN.stepRuns; i++) {
      results.push(await stepLatency(PLAN.steps, "memory", `steps/m${i}`));
    }
    return pool(results);
  });
  const sqlite = await section("step latency (SQLite store)", async () => {
    const results: StepResult[] = [];
    for (let i = 0; i < PLAN.stepRuns; i++) {
      results.push(await stepLatency(PLAN.steps, runs, `steps/s${i}`));
    }
    return pool(results);
  });

  // --- 3. Throughput -----------------------------------------------------------------------
  const rows: {
    result: ThroughputResult;
    rawPerS: number;
    groupedPerS: number;
  }[] = [];
  const tpPath = `${folder}/throughput.db`;
  await section("throughput warm-up", () => throughput(tpPath, 100, PLAN.tasksPerRun, 3));
  for (const [concurrency, runsPerLane] of PLAN.lanes) {
    await section(`throughput, ${concurrency} concurrent runs`, async () => {
      const trials = concurrency === 100 ? PLAN.trials100 : 1;
      const measured: { result: ThroughputResult; rawPerS: number; groupedPerS: number }[] = [];
      for (let t = 0; t < trials; t++) {
        const result = await throughput(tpPath, concurrency, PLAN.tasksPerRun, runsPerLane);
        const perWriter = Math.max(1, Math.round(result.steps / concurrency));
        const rawPerS = await concurrentCommits(raw, altRecord ?? 2000, concurrency, perWriter);
        const groupedPerS = groupedCommits(raw, altRecord ?? 2000, concurrency, perWriter);
        measured.push({ result, rawPerS, groupedPerS });
      }
      measured.sort((a, b) => a.result.stepsPerS - b.result.stepsPerS);
      rows.push(measured[Math.floor(measured.length / 2)]);
    });
  }

  // --- 4. Connected remotes ----------------------------------------------------------------
  const idleRaw = await section(
    "idle streams (raw grpc-js)",
    () => idleRemotes("raw", PLAN.idle, folder),
  );
  const idleOurs = await section(
    "idle remotes (ours)",
    () => idleRemotes("ours", PLAN.idle, folder),
  );

  // --- 5. Resume ---------------------------------------------------------------------------
  const resume = await section("resume (live run)", () => resumeLive(folder, PLAN.resumeLive));
  const cold = await section(
    "resume (server restarted)",
    () => resumeCold(folder, PLAN.resumeCold),
  );

  // --- 6. Sandbox --------------------------------------------------------------------------
  const sandbox = await section("sandbox", () => sandboxCost(folder, PLAN.sandbox));

  // --- 7. Peer -----------------------------------------------------------------------------
  const peer = await section("BullMQ + Redis", () => bullmqSteps(PLAN.peer, 20));

  const seconds = (performance.now() - started) / 1000;
  report({
    sizes,
    chainRecord,
    altRecord,
    ping,
    commit,
    memory,
    sqlite,
    rows,
    idleRaw,
    idleOurs,
    resume,
    cold,
    sandbox,
    peer,
    seconds,
  });
} finally {
  for (const cleanup of cleanups) await cleanup();
  await Deno.remove(folder, { recursive: true }).catch(() => {});
}
Deno.exit(errors.length > 0 ? 1 : 0);

// --- output ------------------------------------------------------------------------------

interface Results {
  sizes: { dispatch: number; result: number };
  chainRecord?: number;
  altRecord?: number;
  ping?: Summary;
  commit?: Summary;
  memory?: { step: Summary; stepsPerS: number };
  sqlite?: { step: Summary; stepsPerS: number };
  rows: { result: ThroughputResult; rawPerS: number; groupedPerS: number }[];
  idleRaw?: IdleResult;
  idleOurs?: IdleResult;
  resume?: Summary;
  cold?: Summary;
  sandbox?: SandboxResult;
  peer?: PeerResult;
  seconds: number;
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

function report(r: Results): void {
  const floor = r.ping && r.commit ? r.ping.p50 + r.commit.p50 : undefined;
  const row100 = r.rows.find((row) => row.result.concurrency === 100);
  const lastIdle = <T>(list: T[] | undefined) => list?.[list.length - 1];
  const oursIdle = lastIdle(r.idleOurs?.points);
  const rawIdle = lastIdle(r.idleRaw?.points);
  const peerOk = r.peer?.ok ? r.peer : undefined;
  const figures = {
    step_ratio_memory: ratio(r.memory?.step.p50, r.ping?.p50),
    step_ratio_sqlite: ratio(r.sqlite?.step.p50, floor),
    steps_per_s_sqlite_100: row100?.result.stepsPerS,
    floor_ratio_sqlite_100: ratio(row100?.result.stepsPerS, row100?.rawPerS),
    rss_kb_per_idle_remote: oursIdle?.kbPerRemote,
    rss_ratio_idle: ratio(oursIdle?.kbPerRemote, rawIdle?.kbPerRemote),
    resume_ms_p50: r.resume?.p50,
    sandbox_ms_per_task: r.sandbox?.msPerTask,
    bullmq_ratio: ratio(r.sqlite?.stepsPerS, peerOk?.stepsPerS),
  };
  const bullmqRatioMemory = ratio(r.memory?.stepsPerS, peerOk?.stepsPerS);
  const targets: Record<keyof typeof figures, [string, (v: number) => boolean]> = {
    step_ratio_memory: ["≤ 1.5", (v) => v <= 1.5],
    step_ratio_sqlite: ["≤ 1.3", (v) => v <= 1.3],
    steps_per_s_sqlite_100: ["≥ 5,000", (v) => v >= 5000],
    floor_ratio_sqlite_100: ["≥ 0.5", (v) => v >= 0.5],
    rss_kb_per_idle_remote: ["", () => true],
    rss_ratio_idle: ["≤ 1.5 at 10,000", (v) => v <= 1.5],
    resume_ms_p50: ["≤ 5 ms", (v) => v <= 5],
    sandbox_ms_per_task: ["", () => true],
    bullmq_ratio: ["≥ 3", (v) => v >= 3],
  };
  const met = (key: keyof typeof figures) => {
    const value = figures[key];
    const [text, check] = targets[key];
    if (!text) return "";
    if (value === undefined) return `${text} (n/a)`;
    return `${text} ${check(value) ? "✅" : "❌"}`;
  };
  const ms = (s: Summary | undefined) => s ? `${fmt(s.p50)} / ${fmt(s.p99)} ms` : "n/a";

  const lines: string[] = [];
  const add = (...cells: string[]) => lines.push(`| ${cells.join(" | ")} |`);
  lines.push(
    `## @tradeline/workflow benchmark${quick ? " (--quick)" : ""}`,
    "",
    `Deno ${Deno.version.deno}, ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), ${
      Math.round(totalmem() / 2 ** 30)
    } GiB, Linux ${release()}; loopback; ${fmt(r.seconds)} s.`,
    "",
  );
  add("section", "figure", "ours", "floor / peer", "ratio", "target");
  add("---", "---", "---:", "---:", "---:", "---");
  add(
    "baseline",
    `grpc-js bidi ping-pong (${r.sizes.result} B → ${r.sizes.dispatch} B), p50 / p99`,
    "",
    ms(r.ping),
    "",
    "",
  );
  add(
    "baseline",
    `SQLite commit of ${fmt(r.chainRecord)} B (WAL, synchronous=FULL), p50 / p99`,
    "",
    ms(r.commit),
    "",
    "",
  );
  add("baseline", "floor of one durable remote step (sum of p50s)", "", `${fmt(floor)} ms`, "", "");
  add(
    "step latency",
    `${PLAN.steps} no-op remote tasks, memory store, per step p50 / p99`,
    ms(r.memory?.step),
    `${fmt(r.ping?.p50)} ms`,
    fmt(figures.step_ratio_memory),
    met("step_ratio_memory"),
  );
  add(
    "step latency",
    `${PLAN.steps} no-op remote tasks, SQLite store, per step p50 / p99`,
    ms(r.sqlite?.step),
    `${fmt(floor)} ms`,
    fmt(figures.step_ratio_sqlite),
    met("step_ratio_sqlite"),
  );
  for (const row of r.rows) {
    const { concurrency, steps, stepsPerS, tasksPerRun } = row.result;
    add(
      "throughput",
      `${fmt(concurrency)} concurrent runs × ${tasksPerRun} alternating tasks (${
        fmt(steps)
      } steps), steps/s vs raw commits/s (one per transaction; grouped: ${fmt(row.groupedPerS)}/s)`,
      fmt(stepsPerS),
      fmt(row.rawPerS),
      fmt(stepsPerS / row.rawPerS),
      concurrency === 100
        ? `${met("steps_per_s_sqlite_100")}, ratio ${met("floor_ratio_sqlite_100")}`
        : "",
    );
  }
  for (const point of r.idleOurs?.points ?? []) {
    const raw = r.idleRaw?.points.find((p) => p.n === point.n);
    add(
      "idle remotes",
      `${fmt(point.n)} held, server RSS KiB per remote (total ${fmt(point.rssKb / 1024)} MiB vs ${
        fmt((raw?.rssKb ?? NaN) / 1024)
      } MiB raw)`,
      fmt(point.kbPerRemote),
      fmt(raw?.kbPerRemote),
      fmt(ratio(point.kbPerRemote, raw?.kbPerRemote)),
      point === oursIdle ? met("rss_ratio_idle") : "",
    );
  }
  add(
    "resume",
    "hello on reconnect → next dispatch (live run), p50 / p99",
    ms(r.resume),
    "",
    "",
    met("resume_ms_p50"),
  );
  add("resume", "hello → dispatch after a server restart (run loaded from SQLite)", ms(r.cold));
  add(
    "sandbox",
    'remote task in its permission-scoped isolate (`isolation: "process"`) vs in-process, per task p50 / p99',
    ms(r.sandbox?.isolated),
    ms(r.sandbox?.inProcess),
    r.sandbox ? `+${fmt(r.sandbox.msPerTask)} ms` : "n/a",
    "",
  );
  add(
    "sandbox",
    "bare `deno run --no-config` of a no-op module (the floor of any subprocess sandbox)",
    ms(r.sandbox?.bareSpawn),
    "",
    "",
    "",
  );
  if (peerOk) {
    add(
      "peer",
      `${PLAN.peer} sequential no-op steps, steps/s: ours (SQLite, fsync per step) vs BullMQ (Redis ${peerOk.redisVersion}, no persistence; worker's completed event)`,
      fmt(r.sqlite?.stepsPerS),
      fmt(peerOk.stepsPerS),
      fmt(figures.bullmq_ratio),
      met("bullmq_ratio"),
    );
    add(
      "peer",
      "… ours with the memory store (no persistence on either side)",
      fmt(r.memory?.stepsPerS),
      fmt(peerOk.stepsPerS),
      fmt(ratio(r.memory?.stepsPerS, peerOk.stepsPerS)),
      "",
    );
    add(
      "peer",
      "… BullMQ per step p50 / p99: worker event; `job.waitUntilFinished(queueEvents)`",
      "",
      `${ms(peerOk.step)}; ${ms(peerOk.stepEvents)}`,
      "",
      "",
    );
  } else {
    const reason = r.peer && !r.peer.ok ? r.peer.reason : "failed";
    add("peer", "BullMQ + Redis", "", reason, "", met("bullmq_ratio"));
  }
  for (const error of errors) lines.push("", `**Failed:** ${error.split("\n")[0]}`);
  console.log(lines.join("\n"));

  if (!flags.json) return;
  const json = {
    ...Object.fromEntries(
      Object.entries(figures).map(([k, v]) => [k, v === undefined ? null : round(v)]),
    ),
    targets_met: Object.fromEntries(
      Object.entries(figures)
        .filter(([k]) => targets[k as keyof typeof figures][0])
        .map(([k, v]) => [k, v === undefined ? null : targets[k as keyof typeof figures][1](v)]),
    ),
    quick,
    seconds: round(r.seconds),
    machine: {
      deno: Deno.version.deno,
      cores: cpus().length,
      memory_gib: round(totalmem() / 2 ** 30),
      free_gib: round(freemem() / 2 ** 30),
    },
    frame_bytes: r.sizes,
    record_bytes_chain: r.chainRecord,
    record_bytes_alternating: r.altRecord,
    pingpong_ms: rounded(r.ping),
    sqlite_commit_ms: rounded(r.commit),
    floor_ms_p50: floor === undefined ? null : round(floor),
    step_ms_memory: rounded(r.memory?.step),
    step_ms_sqlite: rounded(r.sqlite?.step),
    steps_per_s_sequential_memory: num(r.memory?.stepsPerS),
    steps_per_s_sequential_sqlite: num(r.sqlite?.stepsPerS),
    throughput: r.rows.map((row) => ({
      concurrency: row.result.concurrency,
      runs: row.result.runs,
      tasks_per_run: row.result.tasksPerRun,
      steps: row.result.steps,
      steps_per_s: round(row.result.stepsPerS),
      raw_commits_per_s: round(row.rawPerS),
      raw_grouped_records_per_s: round(row.groupedPerS),
      floor_ratio: round(row.result.stepsPerS / row.rawPerS),
      crashed_trials: row.result.crashes,
    })),
    raw_commits_per_s_100: num(row100?.rawPerS),
    idle: {
      ours: r.idleOurs ?? null,
      raw: r.idleRaw ?? null,
      n: oursIdle?.n ?? null,
      rss_kb_per_raw_stream: num(rawIdle?.kbPerRemote),
    },
    resume_ms: rounded(r.resume),
    resume_cold_ms: rounded(r.cold),
    sandbox: r.sandbox
      ? {
        method: 'connect() isolation "process" vs "none": remote task duration on the server',
        in_process_ms: rounded(r.sandbox.inProcess),
        isolated_ms: rounded(r.sandbox.isolated),
        bare_spawn_ms: rounded(r.sandbox.bareSpawn),
      }
      : null,
    bullmq_ratio_memory_store: num(bullmqRatioMemory),
    bullmq: r.peer
      ? r.peer.ok
        ? {
          redis: r.peer.redisVersion,
          step_ms: rounded(r.peer.step),
          steps_per_s: round(r.peer.stepsPerS),
          step_ms_wait_until_finished: rounded(r.peer.stepEvents),
          steps_per_s_wait_until_finished: round(r.peer.stepsPerSEvents),
        }
        : { unavailable: r.peer.reason }
      : null,
    errors,
  };
  console.log(JSON.stringify(json));
}

function num(value: number | undefined): number | null {
  return value === undefined ? null : round(value);
}

function rounded(s: Summary | undefined) {
  return s ? { n: s.n, p50: round(s.p50), p99: round(s.p99), mean: round(s.mean) } : null;
}
