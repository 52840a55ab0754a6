/**
 * Resume: the time from a reconnecting remote's hello to the dispatch of the task it owes,
 * measured at the remote. The run is live on the server (the remote's previous call broke
 * mid-task), or, for the cold figure, loaded from the SQLite file by a restarted server.
 *
 * @module
 */
import { serve, type WorkflowServer } from "../mod.ts";
import { SQLiteStore } from "../server/sqlite_store.ts";
import { helloFrame, ownClient, RawRemote } from "./_raw_remote.ts";
import { summarize, type Summary } from "./_stats.ts";
import { hold } from "./_workflows.ts";

/** Waits until the server has seen the remote of `key` go. */
async function detached(events: AsyncIterator<{ type: string; key: string }>, key: string) {
  for (;;) {
    const { value, done } = await events.next();
    if (done) throw new Error("the server's events ended");
    if (value.type === "remote.detached" && value.key === key) return;
  }
}

/** One hello → dispatch on a fresh call of `client`; the call is then cancelled. */
async function helloToDispatch(
  address: string,
  key: string,
): Promise<{ ms: number; remote: RawRemote; close: () => void }> {
  const client = ownClient(address);
  const remote = new RawRemote(client);
  const hello = helloFrame(hold().workflow, key);
  const dispatched = remote.next("dispatch");
  const t0 = performance.now();
  remote.write(hello);
  await dispatched;
  return { ms: performance.now() - t0, remote, close: () => client.close() };
}

/**
 * Reconnects `rounds` times to a live run: each time the call breaks while the task runs,
 * the server records the attempt as abandoned, and the next hello gets a new attempt.
 */
export async function resumeLive(folder: string, rounds: number): Promise<Summary> {
  const store = new SQLiteStore({ path: `${folder}/resume.db` });
  const server = await serve({ workflows: hold().server, store, port: 0, progress: false });
  const events = server.events()[Symbol.asyncIterator]();
  const samples: number[] = [];
  const client = ownClient(server.address);
  try {
    const key = "resume/live";
    const hello = helloFrame(hold().workflow, key);
    for (let i = 0; i < rounds + 5; i++) {
      const remote = new RawRemote(client);
      const dispatched = remote.next("dispatch");
      const t0 = performance.now();
      remote.write(hello);
      await dispatched;
      if (i >= 5) samples.push(performance.now() - t0);
      const gone = detached(events, key);
      await remote.cancel();
      await gone;
    }
    return summarize(samples);
  } finally {
    client.close();
    await events.return?.();
    await server.shutdown({ grace: 2000 });
    await store.close();
  }
}

/**
 * Restarts the server `rounds` times on the same SQLite file: each time the run is loaded
 * from the store (its interrupted attempt marked for retry) by the hello of its remote.
 */
export async function resumeCold(folder: string, rounds: number): Promise<Summary> {
  const path = `${folder}/resume-cold.db`;
  const samples: number[] = [];
  for (let i = 0; i < rounds + 2; i++) {
    const store = new SQLiteStore({ path });
    let server: WorkflowServer | undefined;
    try {
      server = await serve({ workflows: hold().server, store, port: 0, progress: false });
      const { ms, remote, close } = await helloToDispatch(server.address, "resume/cold");
      if (i >= 2) samples.push(ms);
      await remote.cancel();
      close();
    } finally {
      await server?.shutdown({ grace: 2000 });
      await store.close();
    }
  }
  return summarize(samples);
}
