/**
 * Child process of the idle-remotes benchmark: opens idle remotes, each on its own TCP
 * connection, and holds them.
 *
 * Usage: `deno run -A bench/_idle_clients.ts <ours|raw> <address>`; answers `open <n>` (opens
 * `n` more and prints `open <total> <ms>`) and `quit`.
 *
 * @module
 */
import { rawStream } from "./baseline.ts";
import { commands } from "./_child.ts";
import { helloFrame, ownClient, RawRemote } from "./_raw_remote.ts";
import { hold } from "./_workflows.ts";

const [mode, address] = Deno.args;
const workflow = hold().workflow;
const ping = new Uint8Array(helloFrame(workflow, "idle/00000").byteLength).fill(3);
const held: unknown[] = [];

async function openOne(i: number): Promise<void> {
  const client = ownClient(address);
  if (mode === "ours") {
    const remote = new RawRemote(client);
    remote.write(helloFrame(workflow, `idle/${String(i).padStart(5, "0")}`));
    await remote.next("dispatch");
    held.push(client, remote);
  } else {
    const stream = rawStream(client);
    stream.on("error", () => {});
    const answered = new Promise((resolve) => stream.once("data", resolve));
    stream.write(ping);
    await answered;
    held.push(client, stream);
  }
}

for await (const command of commands()) {
  const [verb, arg] = command.split(" ");
  if (verb === "open") {
    const t0 = performance.now();
    const start = held.length / 2;
    const count = Number(arg);
    let next = 0;
    // At most 100 handshakes in flight at once.
    await Promise.all(Array.from({ length: Math.min(100, count) }, async () => {
      while (next < count) await openOne(start + next++);
    }));
    console.log(`open ${held.length / 2} ${Math.round(performance.now() - t0)}`);
  } else if (verb === "quit") break;
}
Deno.exit(0);
