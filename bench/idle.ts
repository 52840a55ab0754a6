/**
 * Connected remotes: the server's RSS per idle remote, beside raw grpc-js idle streams held the
 * same way. The server runs alone in a child process (so its RSS counts no client memory);
 * the remotes are held by another child, each on its own TCP connection.
 *
 * @module
 */
import { LineChild } from "./_child.ts";

/** RSS of one server kind at each number of idle remotes. */
export interface IdleResult {
  /** Server RSS with no remote, KiB. */
  baseKb: number;
  /** Per number of remotes held: total RSS, KiB per remote, and the time to open them. */
  points: { n: number; rssKb: number; kbPerRemote: number; openMs: number }[];
}

/** Holds `counts` (ascending) idle remotes on a server of `mode` and reads its RSS. */
export async function idleRemotes(
  mode: "ours" | "raw",
  counts: readonly number[],
  folder: string,
): Promise<IdleResult> {
  await using server = new LineChild(
    new URL("./_idle_server.ts", import.meta.url),
    [mode, `${folder}/idle-${mode}.db`],
    ["--v8-flags=--expose-gc"],
  );
  const port = (await server.read()).split(" ")[1];
  await using clients = new LineChild(new URL("./_idle_clients.ts", import.meta.url), [
    mode,
    `127.0.0.1:${port}`,
  ]);
  // A few remotes first, so that lazily loaded code is counted in the base.
  await clients.ask("open 10");
  const baseKb = Number((await server.ask("rss")).split(" ")[1]);
  const points: IdleResult["points"] = [];
  let held = 10;
  for (const n of counts) {
    const answer = (await clients.ask(`open ${n - held}`)).split(" ");
    held = n;
    const rssKb = Number((await server.ask("rss")).split(" ")[1]);
    points.push({ n, rssKb, kbPerRemote: (rssKb - baseKb) / (n - 10), openMs: Number(answer[2]) });
  }
  return { baseKb, points };
}
