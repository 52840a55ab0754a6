/**
 * Sandbox cost: the per-task overhead of running a remote task in its permission-scoped
 * isolate (`connect()`'s default `isolation: "process"`: one `deno run` subprocess per
 * attempt, granted only what the task declares) versus in-process (`isolation: "none"`),
 * measured on the server as each remote task's duration (dispatch to result). Beside it, the
 * bare cost of spawning `deno run --no-config` on a no-op module, the floor of any
 * subprocess sandbox.
 *
 * @module
 */
import { connect, MemoryLocalStore, MemoryStore, serve } from "../mod.ts";
import { summarize, type Summary } from "./_stats.ts";
import { sandboxRemote, sandboxServer } from "./_sandbox_tasks.ts";

/** The sandbox row. */
export interface SandboxResult {
  /** Remote task duration in-process, per task (ms, 1 ms resolution). */
  inProcess: Summary;
  /** Remote task duration in its isolate, per task. */
  isolated: Summary;
  /** `isolated.p50 - inProcess.p50`. */
  msPerTask: number;
  /** A bare `deno run --no-config --allow-read=<dir>` of a no-op module, per spawn. */
  bareSpawn: Summary;
}

/** Runs the ten-task workflow `runs` times each way and reads the tasks' durations. */
async function durations(runs: number, isolation: "process" | "none"): Promise<number[]> {
  const server = await serve({
    workflows: sandboxServer,
    store: new MemoryStore(),
    port: 0,
    progress: false,
  });
  const samples: number[] = [];
  const events = (async () => {
    for await (const event of server.events()) {
      if (event.type === "task.completed") samples.push(event.durationMs);
    }
  })();
  try {
    for (let i = 0; i < runs; i++) {
      await connect({
        address: server.address,
        key: `sandbox/${isolation}/${i}`,
        tasks: sandboxRemote,
        progress: false,
        local: new MemoryLocalStore(),
        isolation,
      });
    }
  } finally {
    await server.shutdown({ grace: 2000 });
    await events;
  }
  return samples;
}

/** A bare subprocess spawn of a no-op module with one read grant, `rounds` times. */
async function bareSpawn(folder: string, rounds: number): Promise<Summary> {
  const dir = `${folder}/sandbox`;
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/task.js`, "export default () => ({ ok: true });\n");
  await Deno.writeTextFile(
    `${dir}/runner.js`,
    'import task from "./task.js";\nconsole.log(JSON.stringify(await task()));\n',
  );
  const samples: number[] = [];
  for (let i = 0; i < rounds + 2; i++) {
    const t0 = performance.now();
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", "--no-prompt", `--allow-read=${dir}`, `${dir}/runner.js`],
      stdout: "piped",
      stderr: "piped",
      cwd: dir,
    }).output();
    if (!output.success) throw new Error(new TextDecoder().decode(output.stderr));
    if (i >= 2) samples.push(performance.now() - t0);
  }
  return summarize(samples);
}

/** Measures the sandbox's per-task cost over `runs` runs of ten tasks each way. */
export async function sandboxCost(folder: string, runs: number): Promise<SandboxResult> {
  await durations(1, "none"); // warm-up
  const inProcess = summarize(await durations(runs, "none"));
  const isolated = summarize(await durations(runs, "process"));
  return {
    inProcess,
    isolated,
    msPerTask: isolated.p50 - inProcess.p50,
    bareSpawn: await bareSpawn(folder, 10),
  };
}
