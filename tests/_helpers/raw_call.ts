/**
 * A raw gRPC call to the server that sends whatever frames (or bytes) a test wants, for
 * testing how the server answers bad input.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import * as grpc from "@grpc/grpc-js";
import {
  CONNECT_PATH,
  decodeServerFrame,
  encodeRemoteFrame,
  type Hello,
  PROTOCOL_VERSION,
  type RemoteFrame,
  type ServerFrame,
} from "../../proto/wire.ts";
import type { AnyWorkflow } from "../../mod.ts";

export interface RawCall extends AsyncDisposable {
  send(frame: RemoteFrame | Uint8Array): void;
  halfClose(): void;
  /** Resolves with the next frame of that kind (frames before it are kept in `frames`). */
  next<K extends ServerFrame["kind"]>(
    kind: K,
    timeoutMs?: number,
  ): Promise<Extract<ServerFrame, { kind: K }>>;
  /** Resolves with the call's final status. */
  status: Promise<grpc.StatusObject>;
  frames: ServerFrame[];
  cancel(): void;
}

export function hello(
  workflow: AnyWorkflow,
  key: string,
  changes: Partial<Hello> = {},
): RemoteFrame {
  return {
    kind: "hello",
    hello: {
      protocolVersion: PROTOCOL_VERSION,
      workflowKey: key,
      definitionName: workflow.name,
      definitionVersion: workflow.version,
      fingerprint: workflow.fingerprint,
      tasks: workflow.tasks.map((t) => ({ name: t.name, side: t.side })),
      ...changes,
    },
  };
}

/** How a raw call reaches the server: credentials, client options, call metadata. */
export interface RawCallOptions {
  credentials?: grpc.ChannelCredentials;
  options?: grpc.ClientOptions;
  metadata?: Record<string, string>;
}

export function rawCall(address: string, how: RawCallOptions = {}): RawCall {
  const client = new grpc.Client(
    address,
    how.credentials ?? grpc.credentials.createInsecure(),
    how.options ?? {},
  );
  const metadata = new grpc.Metadata();
  for (const [name, value] of Object.entries(how.metadata ?? {})) metadata.set(name, value);
  const call = client.makeBidiStreamRequest(
    CONNECT_PATH,
    (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    (b: Buffer) => new Uint8Array(b),
    metadata,
  );
  const frames: ServerFrame[] = [];
  const waiters: { kind: string; resolve: (f: ServerFrame) => void }[] = [];
  const consumed = new Set<ServerFrame>();
  call.on("data", (bytes: Uint8Array) => {
    const frame = decodeServerFrame(bytes);
    frames.push(frame);
    const waiter = waiters.find((w) => w.kind === frame.kind);
    if (waiter) {
      waiters.splice(waiters.indexOf(waiter), 1);
      consumed.add(frame);
      waiter.resolve(frame);
    }
  });
  call.on("error", () => {});
  const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
  status.then(() => client.close());
  return {
    frames,
    status,
    send(frame) {
      call.write(frame instanceof Uint8Array ? frame : encodeRemoteFrame(frame));
    },
    halfClose() {
      call.end();
    },
    cancel() {
      call.cancel();
    },
    next(kind, timeoutMs = 10_000) {
      const already = frames.find((f) => f.kind === kind && !consumed.has(f));
      if (already) {
        consumed.add(already);
        return Promise.resolve(already as never);
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no ${kind} frame within ${timeoutMs} ms`)),
          timeoutMs,
        );
        waiters.push({
          kind,
          resolve: (f) => {
            clearTimeout(timer);
            resolve(f as never);
          },
        });
        status.then(() => {
          clearTimeout(timer);
          reject(new Error(`the call ended before a ${kind} frame`));
        });
      });
    },
    async [Symbol.asyncDispose]() {
      call.cancel();
      await status;
    },
  };
}
