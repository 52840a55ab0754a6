/**
 * The server's limits: what one remote may cost the server, with safe defaults.
 *
 * @module
 */
import type { ChannelOptions } from "@grpc/grpc-js";
import { ErrorCode, WorkflowError } from "../workflow/errors.ts";
import type { RunRecord } from "../workflow/state.ts";

/**
 * Limits of a workflow server, all optional: every one has a safe default.
 *
 * @example Raising the message size for large outputs
 * ```ts ignore
 * import { serve } from "@tradeline/workflow/server";
 *
 * await serve({ workflows, limits: { maxMessageBytes: 16 * 1024 * 1024 } });
 * ```
 */
export interface ServerLimits {
  /**
   * The largest frame a remote may send, in bytes; a larger one ends its call with
   * `RESOURCE_EXHAUSTED`. A task output travels in one frame, so this caps outputs too.
   * Raise the remote's `maxMessageBytes` with it: outputs travel back to the remote.
   *
   * @default {4194304} (4 MiB)
   */
  maxMessageBytes?: number;
  /** Calls open at once on the whole server; one more is refused with `RESOURCE_EXHAUSTED`.
   *
   * @default {1000} */
  maxStreams?: number;
  /** Calls open at once on one connection (HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`); a
   * client queues the others.
   *
   * @default {100} */
  maxStreamsPerConnection?: number;
  /** Unfinished runs one principal may own; starting one more is refused with
   * `RESOURCE_EXHAUSTED`. Without authentication, every remote counts as one principal.
   *
   * @default {1000} */
  maxRunsPerPrincipal?: number;
  /** How long a new call may stay silent before its hello, in ms; then it is ended with
   * `DEADLINE_EXCEEDED`.
   *
   * @default {10000} */
  handshakeTimeout?: number;
  /** How long a connection may stay open with no call on it, in ms; then the server closes
   * it (a remote reopens one when it needs it). `0` keeps idle connections open.
   *
   * @default {300000} */
  idleTimeout?: number;
  /** How often the server pings a connection, in ms, so that proxies and NATs that drop
   * silent connections keep a long idle run's call alive. `0` sends no pings.
   *
   * A remote whose connection went silently dead is noticed within `keepaliveTime` +
   * `keepaliveTimeout`; until then, its reconnection is refused with `RunBusy`.
   *
   * @default {15000} */
  keepaliveTime?: number;
  /** How long the server waits for a ping's answer before it closes the connection, in ms.
   *
   * @default {5000} */
  keepaliveTimeout?: number;
}

/**
 * The defaults of {@linkcode ServerLimits}.
 *
 * @example Doubling the default message size
 * ```ts
 * import { DEFAULT_LIMITS } from "@tradeline/workflow/server";
 *
 * const limits = { maxMessageBytes: 2 * DEFAULT_LIMITS.maxMessageBytes }; // 8 MiB
 * ```
 */
export const DEFAULT_LIMITS: Readonly<Required<ServerLimits>> = Object.freeze({
  maxMessageBytes: 4 * 1024 * 1024,
  maxStreams: 1000,
  maxStreamsPerConnection: 100,
  maxRunsPerPrincipal: 1000,
  handshakeTimeout: 10_000,
  idleTimeout: 300_000,
  keepaliveTime: 15_000,
  keepaliveTimeout: 5_000,
});

const MAX_MESSAGE_BYTES = 2 ** 31 - 1;

/**
 * Fills in the defaults of `limits` and checks every value.
 *
 * @throws {RangeError} naming the bad limit.
 */
export function resolveLimits(limits: ServerLimits = {}): Required<ServerLimits> {
  const resolved = { ...DEFAULT_LIMITS };
  for (const [name, value] of Object.entries(limits)) {
    if (!(name in DEFAULT_LIMITS)) {
      throw new TypeError(
        `Cannot serve: unknown limit "${name}"; known limits are ${
          Object.keys(DEFAULT_LIMITS).join(", ")
        }`,
      );
    }
    if (value === undefined) continue;
    const positive = name.startsWith("max");
    if (!Number.isInteger(value) || value < (positive ? 1 : 0)) {
      throw new RangeError(
        `Cannot serve: limit "${name}" must be an integer of ${positive ? 1 : 0} or more, got ${
          JSON.stringify(value)
        }`,
      );
    }
    (resolved as Record<string, number>)[name] = value;
  }
  if (resolved.maxMessageBytes > MAX_MESSAGE_BYTES) {
    throw new RangeError(
      `Cannot serve: limit "maxMessageBytes" must be at most ${MAX_MESSAGE_BYTES}`,
    );
  }
  return resolved;
}

/** The grpc-js server options that carry `limits`. */
export function grpcServerOptions(limits: Required<ServerLimits>): ChannelOptions {
  const options: ChannelOptions = {
    "grpc.max_receive_message_length": limits.maxMessageBytes,
    "grpc.max_concurrent_streams": limits.maxStreamsPerConnection,
  };
  if (limits.idleTimeout > 0) options["grpc.max_connection_idle_ms"] = limits.idleTimeout;
  if (limits.keepaliveTime > 0) {
    options["grpc.keepalive_time_ms"] = limits.keepaliveTime;
    options["grpc.keepalive_timeout_ms"] = limits.keepaliveTimeout;
  }
  return options;
}

/**
 * Refuses a new run when `principal` already owns `max` unfinished runs.
 *
 * @throws {WorkflowError} `ResourceExhausted`.
 */
export function checkRunQuota(
  runs: Iterable<{ record: RunRecord }>,
  key: string,
  principal: string | undefined,
  max: number,
): void {
  let owned = 0;
  for (const { record } of runs) {
    if (record.status === "running" && record.principal === principal && ++owned >= max) {
      throw new WorkflowError(
        ErrorCode.ResourceExhausted,
        `Cannot start run "${key}": ${
          principal === undefined ? "the remotes" : `principal "${principal}"`
        } already own ${owned} unfinished runs, the server's limit; finish or cancel some, or raise serve({ limits: { maxRunsPerPrincipal } })`,
        { key },
      );
    }
  }
}
