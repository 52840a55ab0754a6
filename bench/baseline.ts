/**
 * The physical floor of one durable remote step on this machine: a raw grpc-js bidirectional
 * ping-pong with the sizes of a dispatch and a result, and a raw SQLite commit, with the
 * default store's settings, of a record the size of a run's state.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import type { StatementSync } from "node:sqlite";
import { openDatabase } from "../workflow/_sqlite.ts";
import { encodePayload } from "../proto/payload.ts";
import { encodeRemoteFrame, encodeServerFrame } from "../proto/wire.ts";
import { summarize, type Summary } from "./_stats.ts";
import { bidiFrameMethod, deserializeFrame, serializeFrame } from "../proto/transport.ts";

const PATH = "/bench.Echo/Connect";
/** The service of the raw baselines: one bidi method, raw bytes both ways. */
export const ECHO_SERVICE: grpc.ServiceDefinition = { connect: bidiFrameMethod(PATH) };

/** The channel options our server and client use, so the raw baseline carries the same. */
export const CHANNEL_OPTIONS = { "grpc.max_receive_message_length": 4 * 1024 * 1024 };

/** The byte sizes of a no-op step's frames: the dispatch the server sends, the result back. */
export function frameSizes(): { dispatch: number; result: number } {
  const none = encodePayload(undefined, "output");
  const dispatch = encodeServerFrame({
    kind: "dispatch",
    dispatch: {
      task: "t100",
      attempt: 1,
      outputs: [{ task: "t99", value: none }],
      timeoutMs: 0,
      heartbeatMs: 0,
    },
  });
  const result = encodeRemoteFrame({
    kind: "result",
    result: { task: "t100", attempt: 1, output: none },
  });
  return { dispatch: dispatch.byteLength, result: result.byteLength };
}

/** Starts a raw grpc-js server whose one bidi method calls `onCall` for each stream. */
export async function rawServer(
  onCall: (call: grpc.ServerDuplexStream<Uint8Array, Uint8Array>) => void,
): Promise<{ address: string; server: grpc.Server; close(): Promise<void> }> {
  const server = new grpc.Server(CHANNEL_OPTIONS);
  server.addService(ECHO_SERVICE, { connect: onCall });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      "127.0.0.1:0",
      grpc.ServerCredentials.createInsecure(),
      (error, port) => error ? reject(error) : resolve(port),
    )
  );
  return {
    address: `127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}

/** Opens a raw bidi stream to a {@linkcode rawServer}. */
export function rawStream(
  client: grpc.Client,
): grpc.ClientDuplexStream<Uint8Array, Uint8Array> {
  return client.makeBidiStreamRequest(
    PATH,
    serializeFrame,
    deserializeFrame,
    new grpc.Metadata(),
    {},
  );
}

/**
 * Round trips on one raw grpc-js bidi stream, in this process: the client writes a
 * result-sized message, the server answers with a dispatch-sized one.
 */
export async function pingPong(rounds: number, warmup: number): Promise<Summary> {
  const sizes = frameSizes();
  const reply = new Uint8Array(sizes.dispatch).fill(7);
  const echo = await rawServer((call) => {
    call.on("data", () => call.write(reply));
    call.on("end", () => call.end());
    call.on("error", () => {});
  });
  const client = new grpc.Client(echo.address, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  try {
    const stream = rawStream(client);
    stream.on("error", () => {});
    const ping = new Uint8Array(sizes.result).fill(3);
    let waiting: (() => void) | undefined;
    stream.on("data", () => waiting?.());
    const once = () =>
      new Promise<void>((resolve) => {
        waiting = resolve;
        stream.write(ping);
      });
    const samples: number[] = [];
    for (let i = 0; i < warmup + rounds; i++) {
      const t0 = performance.now();
      await once();
      if (i >= warmup) samples.push(performance.now() - t0);
    }
    const ended = new Promise((resolve) => stream.on("status", resolve));
    stream.end();
    await ended;
    return summarize(samples);
  } finally {
    client.close();
    await echo.close();
  }
}

/**
 * A raw SQLite table with the default store's settings (WAL, `synchronous=FULL`): one row per
 * key, each write a versioned compare-and-set of a blob, as the run store writes a record.
 */
export class RawTable {
  readonly #update: StatementSync;
  readonly #close: () => void;
  readonly #exec: (sql: string) => void;
  readonly #versions = new Map<string, number>();
  readonly #blobs = new Map<number, Uint8Array>();

  constructor(path: string) {
    const { db } = openDatabase({
      path,
      durability: "full",
      busyTimeout: undefined,
      schema: `CREATE TABLE IF NOT EXISTS raw (
        key TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL, record BLOB NOT NULL)`,
      what: "raw bench table",
    });
    this.#update = db.prepare(
      "INSERT INTO raw (key, version, record) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE " +
        "SET version = excluded.version, record = excluded.record WHERE raw.version = ?",
    );
    this.#close = () => db.close();
    this.#exec = (sql) => db.exec(sql);
  }

  /**
   * One write of a `bytes`-long record: committed at once unless a transaction is open.
   */
  commit(key: string, bytes: number): void {
    let blob = this.#blobs.get(bytes);
    if (!blob) this.#blobs.set(bytes, blob = new Uint8Array(bytes).fill(42));
    const version = this.#versions.get(key) ?? 0;
    const { changes } = this.#update.run(key, version + 1, blob, version);
    if (changes !== 1) throw new Error(`raw commit of "${key}" changed ${changes} rows`);
    this.#versions.set(key, version + 1);
  }

  /** Runs a statement such as `BEGIN` or `COMMIT`. */
  exec(sql: string): void {
    this.#exec(sql);
  }

  /**
   * Writes until the write-ahead log has wrapped at least once (`megabytes` MB written), so
   * that measured commits see the steady state of a long-lived server: they overwrite the
   * log's pages instead of growing its file, which costs an extra metadata flush.
   */
  warm(megabytes = 6): void {
    const bytes = 32 * 1024;
    for (let i = 0; i < (megabytes * 1024 * 1024) / bytes; i++) this.commit("warm-up", bytes);
  }

  close(): void {
    this.#close();
  }
}

/** Sequential raw commits: the latency of one durable write of a run's state. */
export function sqliteCommits(table: RawTable, recordBytes: number, count: number): Summary {
  for (let i = 0; i < 20; i++) table.commit("seq", recordBytes);
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    table.commit("seq", recordBytes);
    samples.push(performance.now() - t0);
  }
  return summarize(samples);
}

let batches = 0;

/**
 * `concurrency` writers, each committing its own key's record `perWriter` times, each
 * commit its own transaction, all on one connection (as the run store's connection).
 *
 * @returns Commits per second.
 */
export async function concurrentCommits(
  table: RawTable,
  recordBytes: number,
  concurrency: number,
  perWriter: number,
): Promise<number> {
  const prefix = `c${++batches}`;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      for (let i = 0; i < perWriter; i++) {
        await Promise.resolve();
        table.commit(`${prefix}-${w}`, recordBytes);
      }
    }),
  );
  return (concurrency * perWriter) / ((performance.now() - t0) / 1000);
}

/**
 * The floor of a group-committing writer: `concurrency` records per transaction (one flush
 * to the disk per turn), `rounds` turns.
 *
 * @returns Records committed per second.
 */
export function groupedCommits(
  table: RawTable,
  recordBytes: number,
  concurrency: number,
  rounds: number,
): number {
  const prefix = `g${++batches}`;
  const t0 = performance.now();
  for (let r = 0; r < rounds; r++) {
    table.exec("BEGIN IMMEDIATE");
    for (let w = 0; w < concurrency; w++) table.commit(`${prefix}-${w}`, recordBytes);
    table.exec("COMMIT");
  }
  return (concurrency * rounds) / ((performance.now() - t0) / 1000);
}
