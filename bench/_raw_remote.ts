/**
 * A remote that speaks the wire protocol directly (hello, then frames), for the sections that
 * need exact timing or one TCP connection per remote. The server cannot tell it from
 * `connect()`: it sends the same frames.
 *
 * @module
 */
import * as grpc from "@grpc/grpc-js";
import type { AnyWorkflow } from "../mod.ts";
import {
  CONNECT_PATH,
  decodeServerFrame,
  encodeRemoteFrame,
  PROTOCOL_VERSION,
  type RemoteFrame,
  type ServerFrame,
} from "../proto/wire.ts";
import { CHANNEL_OPTIONS } from "./baseline.ts";
import { deserializeFrame, serializeFrame } from "../proto/transport.ts";

/** The hello frame of `workflow` for run `key`. */
export function helloFrame(workflow: AnyWorkflow, key: string): Uint8Array {
  const frame: RemoteFrame = {
    kind: "hello",
    hello: {
      protocolVersion: PROTOCOL_VERSION,
      workflowKey: key,
      definitionName: workflow.name,
      definitionVersion: workflow.version,
      fingerprint: workflow.fingerprint,
      tasks: workflow.tasks.map((t) => ({ name: t.name, side: t.side })),
    },
  };
  return encodeRemoteFrame(frame);
}

/**
 * A client with its own TCP connection (a local subchannel pool), as a remote on its own
 * machine would have.
 */
export function ownClient(address: string): grpc.Client {
  return new grpc.Client(address, grpc.credentials.createInsecure(), {
    ...CHANNEL_OPTIONS,
    "grpc.use_local_subchannel_pool": 1,
  });
}

/** One call of the workflow protocol, with a way to wait for a frame kind. */
export class RawRemote {
  readonly call: grpc.ClientDuplexStream<Uint8Array, Uint8Array>;
  readonly ended: Promise<void>;
  #waiter?: { kind: ServerFrame["kind"]; resolve: (frame: ServerFrame) => void };

  constructor(client: grpc.Client) {
    this.call = client.makeBidiStreamRequest(
      CONNECT_PATH,
      serializeFrame,
      deserializeFrame,
      new grpc.Metadata(),
      {},
    );
    this.call.on("error", () => {});
    this.ended = new Promise((resolve) => this.call.on("status", () => resolve()));
    this.call.on("data", (bytes: Uint8Array) => {
      const waiter = this.#waiter;
      if (!waiter) return;
      const frame = decodeServerFrame(bytes);
      if (frame.kind === waiter.kind) {
        this.#waiter = undefined;
        waiter.resolve(frame);
      }
    });
  }

  /** Writes encoded frame bytes. */
  write(bytes: Uint8Array): void {
    this.call.write(bytes);
  }

  /** Resolves with the next frame of `kind`; rejects when the call ends first. */
  next<K extends ServerFrame["kind"]>(kind: K): Promise<Extract<ServerFrame, { kind: K }>> {
    return new Promise((resolve, reject) => {
      this.#waiter = { kind, resolve: resolve as (frame: ServerFrame) => void };
      this.ended.then(() => reject(new Error(`the call ended before a ${kind} frame`)));
    });
  }

  /** Cancels the call and waits for its end. */
  async cancel(): Promise<void> {
    this.call.cancel();
    await this.ended;
  }
}
