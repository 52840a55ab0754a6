/**
 * The thin gRPC layer of the server: moves frames between grpc-js calls and the engine.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type * as grpc from "@grpc/grpc-js";
import { ErrorCode, WorkflowError } from "../workflow/errors.ts";
import {
  CONNECT_PATH,
  decodeRemoteFrame,
  encodeServerFrame,
  type ServerFrame,
} from "../proto/wire.ts";
import { toStatus } from "../proto/status.ts";
import type { Engine } from "./engine.ts";
import type { Connection, Run } from "./run.ts";

type Call = grpc.ServerDuplexStream<Uint8Array, Uint8Array>;

/** Bytes a remote may leave unread before its call is ended. */
const MAX_UNREAD_BYTES = 64 * 1024 * 1024;

const toBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const identity = (bytes: Buffer): Uint8Array => bytes;

/** The service definition of `WorkflowService`, with frames passed as raw bytes. */
export const SERVICE: grpc.ServiceDefinition = {
  connect: {
    path: CONNECT_PATH,
    requestStream: true,
    responseStream: true,
    requestSerialize: toBuffer,
    requestDeserialize: identity,
    responseSerialize: toBuffer,
    responseDeserialize: identity,
  },
};

/** A grpc-js call seen as a {@linkcode Connection}. */
class CallConnection implements Connection {
  readonly peer: string;
  readonly #call: Call;
  closed = false;

  constructor(call: Call) {
    this.#call = call;
    let peer = "unknown peer";
    try {
      peer = call.getPeer();
    } catch { /* the call may already be gone */ }
    this.peer = peer;
  }

  send(frame: ServerFrame): void {
    if (this.closed) return;
    this.#call.write(encodeServerFrame(frame));
    if (this.#call.writableLength > MAX_UNREAD_BYTES) {
      this.end(
        new WorkflowError(
          ErrorCode.ResourceExhausted,
          `The remote left more than ${MAX_UNREAD_BYTES} bytes unread; the call was ended`,
        ),
      );
    }
  }

  end(error?: WorkflowError): void {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.#call.writableEnded) return;
      if (error) this.#call.emit("error", toStatus(error));
      else this.#call.end();
    } catch { /* the call is already gone */ }
  }
}

/** Serves one call: the first frame must be a hello; the rest go to the run. */
export function handleCall(engine: Engine, call: Call, onError: (error: unknown) => void): void {
  const connection = new CallConnection(call);
  let run: Run | undefined;
  let queue: Promise<unknown> = Promise.resolve();
  let greeted = false;

  const gone = (reason: string) => {
    if (!connection.closed) connection.closed = true;
    queue = queue.then(() => run?.detach(connection, reason)).catch(onError);
  };

  call.on("data", (bytes: Uint8Array) => {
    if (connection.closed) return;
    let frame;
    try {
      frame = decodeRemoteFrame(bytes);
    } catch (error) {
      connection.end(error as WorkflowError);
      gone((error as Error).message);
      return;
    }
    if (!greeted) {
      if (frame.kind !== "hello") {
        const error = new WorkflowError(
          ErrorCode.ProtocolViolation,
          `The first frame of a call must be a hello, not a ${frame.kind}`,
        );
        connection.end(error);
        return;
      }
      greeted = true;
      queue = engine.hello(connection, frame.hello).then(
        (attached) => run = attached,
        (error) => {
          connection.end(
            error instanceof WorkflowError ? error : new WorkflowError(
              ErrorCode.Internal,
              `Cannot start run: ${error?.message ?? error}`,
              {
                cause: error,
              },
            ),
          );
          if (!(error instanceof WorkflowError)) onError(error);
        },
      );
      return;
    }
    queue = queue.then(() => run?.receive(connection, frame)).catch(onError);
  });
  // The remote half-closed: end our half too, so the call finishes with a status.
  call.on("end", () => {
    gone("the remote ended its stream");
    if (!call.writableEnded) {
      try {
        call.end();
      } catch { /* already gone */ }
    }
  });
  call.on("cancelled", () => gone("the call was cancelled"));
  call.on("error", (error: Error) => gone(error.message));
  call.on("close", () => gone("the call closed"));
}
