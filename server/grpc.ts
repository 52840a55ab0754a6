/**
 * The thin gRPC layer of the server: moves frames between grpc-js calls and the engine.
 *
 * @module
 */
import type * as grpc from "@grpc/grpc-js";
import { ErrorCode, WorkflowError } from "../workflow/errors.ts";
import {
  CONNECT_PATH,
  decodeRemoteFrame,
  encodeServerFrame,
  type ServerFrame,
} from "../proto/wire.ts";
import { Status, toStatus } from "../proto/status.ts";
import { bidiFrameMethod } from "../proto/transport.ts";
import { scopedKey } from "./auth.ts";
import type { Engine } from "./engine.ts";
import type { Connection, Run } from "./run.ts";

type Call = grpc.ServerDuplexStream<Uint8Array, Uint8Array>;

/** Bytes a remote may leave unread before its call is ended. */
const MAX_UNREAD_BYTES = 64 * 1024 * 1024;
/** Frames read but not yet handled at which a call stops reading, and where it resumes. */
const PAUSE_AT = 256;
const RESUME_AT = 32;

/** What {@linkcode handleCall} knows of a call beyond its frames. */
export interface CallOptions {
  /** The authenticated principal; workflow keys are scoped to it. */
  principal?: string;
  /** Ends the call with `DEADLINE_EXCEEDED` when no hello came within this many ms. */
  handshakeTimeout?: number;
}

/** The service definition of `WorkflowService`, with frames passed as raw bytes. */
export const SERVICE: grpc.ServiceDefinition = { connect: bidiFrameMethod(CONNECT_PATH) };

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
export function handleCall(
  engine: Engine,
  call: Call,
  onError: (error: unknown) => void,
  options: CallOptions = {},
): void {
  const connection = new CallConnection(call);
  let run: Run | undefined;
  let queue: Promise<unknown> = Promise.resolve();
  let greeted = false;
  let pending = 0;
  const handled = () => {
    if (--pending === RESUME_AT && call.isPaused()) call.resume();
  };
  const handshake = options.handshakeTimeout === undefined ? undefined : setTimeout(() => {
    if (greeted || connection.closed) return;
    const error = new WorkflowError(
      ErrorCode.ProtocolViolation,
      `No hello within ${options.handshakeTimeout} ms: a call must start with its hello; the call was closed`,
    );
    connection.closed = true;
    try {
      call.emit("error", { ...toStatus(error), code: Status.DEADLINE_EXCEEDED });
    } catch { /* the call is already gone */ }
  }, options.handshakeTimeout);

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
      clearTimeout(handshake);
      if (frame.kind !== "hello") {
        const error = new WorkflowError(
          ErrorCode.ProtocolViolation,
          `The first frame of a call must be a hello, not a ${frame.kind}`,
        );
        connection.end(error);
        return;
      }
      greeted = true;
      const { principal } = options;
      const hello = { ...frame.hello, workflowKey: scopedKey(principal, frame.hello.workflowKey) };
      queue = engine.hello(connection, hello, principal).then(
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
    if (++pending === PAUSE_AT) call.pause();
    queue = queue.then(() => run?.receive(connection, frame)).catch(onError).finally(handled);
  });
  // The remote half-closed: end our half too, so the call finishes with a status.
  call.on("end", () => {
    clearTimeout(handshake);
    if (!greeted && !connection.closed) {
      connection.end(
        new WorkflowError(ErrorCode.ProtocolViolation, "The call ended before its hello"),
      );
      return;
    }
    gone("the remote ended its stream");
    if (!call.writableEnded) {
      try {
        call.end();
      } catch { /* already gone */ }
    }
  });
  call.on("cancelled", () => {
    clearTimeout(handshake);
    gone("the call was cancelled");
  });
  call.on("error", (error: Error) => gone(error.message));
  call.on("close", () => {
    clearTimeout(handshake);
    gone("the call closed");
  });
}
