/**
 * The gate in front of every call: counts open calls, authenticates, then hands the call to
 * {@linkcode handleCall} with its principal and handshake deadline.
 *
 * @module
 */
import type * as grpc from "@grpc/grpc-js";
import { ErrorCode, WorkflowError } from "../workflow/errors.ts";
import { toStatus } from "../proto/status.ts";
import { authenticateCall, type Authenticator } from "./auth.ts";
import type { Engine } from "./engine.ts";
import { handleCall } from "./grpc.ts";
import type { ServerLimits } from "./limits.ts";

type Call = grpc.ServerDuplexStream<Uint8Array, Uint8Array>;

/** Options of {@linkcode guardedHandler}. */
export interface GuardOptions {
  engine: Engine;
  authenticate?: Authenticator;
  limits: Required<ServerLimits>;
  /** Receives internal errors (never a call's metadata or a secret). */
  onError: (error: unknown) => void;
}

/** The handler of the `Connect` method: every call goes through this gate. */
export function guardedHandler(options: GuardOptions): (call: Call) => void {
  const { engine, limits } = options;
  let open = 0;
  return (call) => {
    const started = Date.now();
    open++;
    let counted = true;
    const release = () => {
      if (!counted) return;
      counted = false;
      open--;
    };
    for (const event of ["close", "cancelled", "finish", "error"]) call.once(event, release);
    // Ends the call, once, with `error`'s status.
    const refuse = (error: WorkflowError) => {
      if (!counted) return;
      try {
        if (!call.cancelled) call.emit("error", toStatus(error));
      } catch { /* the call is already gone */ }
      release();
    };
    if (open > limits.maxStreams) {
      refuse(
        new WorkflowError(
          ErrorCode.ResourceExhausted,
          `The server already has ${limits.maxStreams} calls open, its limit; try again later, or raise serve({ limits: { maxStreams } })`,
        ),
      );
      return;
    }
    const handshake = setTimeout(() => {
      const error = new WorkflowError(
        ErrorCode.Unauthenticated,
        `The call was not authenticated within ${limits.handshakeTimeout} ms`,
      );
      refuse(error);
    }, limits.handshakeTimeout);
    authenticateCall(call, options.authenticate).then(
      (principal) => {
        clearTimeout(handshake);
        if (!counted || call.cancelled) return;
        handleCall(engine, call, options.onError, {
          principal,
          handshakeTimeout: Math.max(1, limits.handshakeTimeout - (Date.now() - started)),
        });
      },
      (error: WorkflowError) => {
        clearTimeout(handshake);
        if (error.code === ErrorCode.Internal) options.onError(error);
        refuse(error);
      },
    );
  };
}
