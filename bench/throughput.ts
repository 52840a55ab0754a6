/**
 * Throughput: `concurrency` runs at once of a no-op workflow whose tasks alternate sides. The
 * server (SQLite store, default durability) and the remotes each run in a child process, so
 * the two use both cores as a real deployment would, and a crash of either (see
 * docs/performance.md: Deno's HTTP/2 layer has crashed under this load) fails one trial,
 * which is retried, instead of the whole benchmark.
 *
 * @module
 */
import { LineChild } from "./_child.ts";

let batches = 0;

/** One row of the throughput table. */
export interface ThroughputResult {
  concurrency: number;
  runs: number;
  tasksPerRun: number;
  steps: number;
  ms: number;
  stepsPerS: number;
  /** Trials lost to a crashed child process before this one succeeded. */
  crashes: number;
  /** Whether the server's process crashed as the remotes disconnected after this trial. */
  serverDied: boolean;
}

/**
 * Runs `concurrency` lanes of `runsPerLane` runs each (one after another) of `tasksPerRun`
 * alternating no-op tasks against a server on the SQLite file `path`, and measures steps/s
 * (first hello to last completion, as the remotes' process timed it, after an untimed
 * warm-up). A trial whose child process crashed is retried, twice at most.
 */
export async function throughput(
  path: string,
  concurrency: number,
  tasksPerRun: number,
  runsPerLane: number,
): Promise<ThroughputResult> {
  for (let crashes = 0;; crashes++) {
    try {
      return { ...await trial(path, concurrency, tasksPerRun, runsPerLane), crashes };
    } catch (error) {
      if (crashes >= 2) throw error;
      console.error(`bench: a throughput trial failed (${(error as Error).message}); retrying`);
    }
  }
}

async function trial(
  path: string,
  concurrency: number,
  tasksPerRun: number,
  runsPerLane: number,
): Promise<Omit<ThroughputResult, "crashes">> {
  await using server = new LineChild(new URL("./_tp_server.ts", import.meta.url), [
    path,
    String(tasksPerRun),
  ]);
  const port = (await server.read()).split(" ")[1];
  const remotes = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./_remotes.ts", import.meta.url).pathname,
      `127.0.0.1:${port}`,
      String(concurrency),
      String(tasksPerRun),
      `tp${concurrency}-${++batches}`,
      String(runsPerLane),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  // A server that dies before the remotes finish fails the trial within 2 s, instead of after
  // the remotes' timeout; one that dies as they disconnect leaves the measurement intact.
  let serverDied = false;
  let killer: ReturnType<typeof setTimeout> | undefined;
  server.exited.then(() => {
    serverDied = true;
    killer = setTimeout(() => {
      try {
        remotes.kill("SIGKILL");
      } catch { /* already gone */ }
    }, 2000);
  });
  const output = await remotes.output();
  clearTimeout(killer);
  const text = new TextDecoder().decode(output.stdout).trim().split("\n").at(-1) ?? "";
  if (!output.success) {
    throw new Error(
      `the ${serverDied ? "server's" : "remotes'"} process died (remotes exit ${output.code})`,
    );
  }
  const result = JSON.parse(text) as { ms: number; ok: number; error?: string };
  if (result.ok !== concurrency) {
    throw new Error(`${concurrency - result.ok} of ${concurrency} lanes failed: ${result.error}`);
  }
  const runs = concurrency * runsPerLane;
  const steps = runs * tasksPerRun;
  return {
    concurrency,
    runs,
    tasksPerRun,
    steps,
    ms: result.ms,
    stepsPerS: steps / (result.ms / 1000),
    serverDied,
  };
}
