/**
 * Hostile frames for the fuzz test: a seeded random source, valid frames to start from, and
 * mutations (truncation, bit flips, wrong wire types, huge lengths, deep nesting).
 *
 * @module
 */
import { encodeRemoteFrame, type RemoteFrame } from "../../proto/wire.ts";
import { encodePayload } from "../../proto/payload.ts";
import type { AnyWorkflow } from "../../mod.ts";
import { hello } from "./raw_call.ts";

/** A small seeded random source (mulberry32), so a failing run can be replayed. */
export class Random {
  #state: number;

  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    let t = this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

/** Frames the server must accept and ignore on a run whose first task is in flight. */
export function ignoredFrames(rng: Random, tasks: string[]): RemoteFrame[] {
  const task = rng.pick(tasks);
  const attempt = 1 + rng.int(3);
  return [
    // Progress and heartbeats for attempts that are not in flight are dropped.
    { kind: "progress", progress: { task, attempt: attempt + 5, fraction: rng.next(), note: "x" } },
    { kind: "heartbeat", heartbeat: { task, attempt: attempt + 5 } },
    { kind: "progress", progress: { task: "no-such-task", attempt, fraction: 0.5, note: "" } },
    { kind: "heartbeat", heartbeat: { task: "no-such-task", attempt } },
  ];
}

/** Frames that break the protocol once a run is attached: each ends the call. */
export function fatalFrames(workflow: AnyWorkflow, key: string): (RemoteFrame | Uint8Array)[] {
  const output = encodePayload({ n: 1 }, "output");
  return [
    hello(workflow, key), // a second hello
    { kind: "result", result: { task: "no-such-task", attempt: 1, output } },
    { kind: "result", result: { task: workflow.tasks[2].name, attempt: 7, output } },
    {
      kind: "failure",
      failure: { task: "unknown", attempt: 3, error: { code: "X", message: "" } },
    },
    new Uint8Array(0), // an empty frame
    Uint8Array.of(0xfa, 0x07, 0x00), // only an unknown field (127)
  ];
}

/** A payload nested `depth` levels deep: far past the codec's limit. */
export function deepPayload(depth: number): Uint8Array {
  // Value{list_value(9): ListValue{items(1): Value{...}}}, built from the inside out.
  let inner: Uint8Array = Uint8Array.of(0x08, 0x01); // null_value: true
  for (let i = 0; i < depth; i++) {
    const item = concat(Uint8Array.of(0x0a), varint(inner.length), inner);
    inner = concat(Uint8Array.of(0x4a), varint(item.length), item);
  }
  return inner;
}

/** Bytes that nest unknown groups `depth` deep inside a frame. */
export function deepGroups(depth: number): Uint8Array {
  const open = new Uint8Array(depth).fill(0x7b); // field 15, start group
  const close = new Uint8Array(depth).fill(0x7c); // field 15, end group
  return concat(open, close);
}

// Deeply nested bytes are costly to build: a few are made once and reused.
const DEEP_GROUPS = [1_000, 10_000, 50_000].map(deepGroups);
const DEEP_PAYLOADS = [40, 200, 1_000].map(deepPayload);

/** A frame mutated at random: a kind of damage, and the damaged bytes. */
export function mutated(
  rng: Random,
  workflow: AnyWorkflow,
  key: string,
): { kind: string; bytes: Uint8Array } {
  const task = rng.pick(workflow.tasks).name;
  const output = encodePayload({ n: rng.int(100), text: "ünïcode ✓" }, "output");
  const base = encodeRemoteFrame(
    rng.pick<RemoteFrame>([
      hello(workflow, key),
      { kind: "result", result: { task, attempt: 1, output } },
      { kind: "progress", progress: { task, attempt: 1, fraction: 0.5, note: "half" } },
      { kind: "failure", failure: { task, attempt: 1, error: { code: "E", message: "m" } } },
    ]),
  );
  const kind = rng.pick([
    "random",
    "truncated",
    "flipped",
    "wrong-type",
    "huge-length",
    "deep-groups",
    "deep-payload",
    "bad-hello",
    "duplicated",
  ]);
  switch (kind) {
    case "random":
      return { kind, bytes: rng.bytes(1 + rng.int(96)) };
    case "truncated":
      return { kind, bytes: base.subarray(0, Math.max(1, rng.int(base.length))) };
    case "flipped": {
      const bytes = new Uint8Array(base);
      for (let i = 0, n = 1 + rng.int(4); i < n; i++) {
        bytes[rng.int(bytes.length)] ^= 1 << rng.int(8);
      }
      return { kind, bytes };
    }
    case "wrong-type": {
      // Field 1 (hello) or 2 (result) sent as a varint, a fixed64 or a fixed32.
      const field = 1 + rng.int(2);
      const wire = rng.pick([0, 1, 5]);
      return { kind, bytes: concat(Uint8Array.of((field << 3) | wire), rng.bytes(8)) };
    }
    case "huge-length":
      // Field 2 (result), length-delimited, claiming up to 4 GiB.
      return {
        kind,
        bytes: concat(Uint8Array.of(0x12, 0xff, 0xff, 0xff, 0xff, 0x0f), rng.bytes(8)),
      };
    case "deep-groups":
      return { kind, bytes: rng.pick(DEEP_GROUPS) };
    case "deep-payload":
      // For the task in flight, so that the payload is decoded.
      return {
        kind,
        bytes: encodeRemoteFrame({
          kind: "result",
          result: { task: workflow.tasks[0].name, attempt: 1, output: rng.pick(DEEP_PAYLOADS) },
        }),
      };
    case "bad-hello":
      return {
        kind,
        bytes: encodeRemoteFrame(
          rng.pick<RemoteFrame>([
            hello(workflow, key, { protocolVersion: 99 }),
            hello(workflow, key, { definitionName: "not served" }),
            hello(workflow, key, { fingerprint: "0".repeat(64) }),
            hello(workflow, "k".repeat(300)),
            hello(workflow, "bad\u0000key"),
            hello(workflow, key, { tasks: [{ name: "", side: "remote" }] }),
          ]),
        ),
      };
    default: // a frame sent twice over, as one message
      return { kind, bytes: concat(base, base) };
  }
}

function varint(n: number): Uint8Array {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Uint8Array.from(out);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
