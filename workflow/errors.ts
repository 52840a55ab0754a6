/**
 * Error classes shared by the server and the remote.
 *
 * Every error a caller may want to catch is a {@linkcode WorkflowError} with a stable
 * {@linkcode ErrorCode}; the code survives the trip over the wire, so a remote sees the same
 * code the server raised and vice versa.
 *
 * @module
 */

/** The stable codes of {@linkcode WorkflowError}. */
export const ErrorCode = {
  /** The remote's definition differs from the server's (name, version or task list). */
  DefinitionMismatch: "DefinitionMismatch",
  /** The server hosts no workflow definition of that name. */
  UnknownWorkflow: "UnknownWorkflow",
  /** A task threw, or reported failure. */
  TaskFailed: "TaskFailed",
  /** A task did not finish within its timeout, or stopped sending heartbeats. */
  TaskTimeout: "TaskTimeout",
  /** The run ended in failure. */
  RunFailed: "RunFailed",
  /** The run was cancelled. */
  Cancelled: "Cancelled",
  /** The server could not be reached, or the connection broke. */
  Unavailable: "Unavailable",
  /** A frame broke the protocol: wrong order, unknown task, malformed content. */
  ProtocolViolation: "ProtocolViolation",
  /** A payload value cannot be encoded or decoded. */
  InvalidPayload: "InvalidPayload",
  /** Another remote is already attached to the run. */
  RunBusy: "RunBusy",
  /** A task implementation is missing or does not match the definition. */
  InvalidImplementation: "InvalidImplementation",
  /** An operation was refused by a permission check. */
  PermissionDenied: "PermissionDenied",
  /** The caller did not authenticate. */
  Unauthenticated: "Unauthenticated",
  /** A limit was exceeded (message size, streams, runs). */
  ResourceExhausted: "ResourceExhausted",
  /** The server is shutting down. */
  ShuttingDown: "ShuttingDown",
  /** A store write lost an optimistic-concurrency race. */
  Conflict: "Conflict",
  /** Anything else. */
  Internal: "Internal",
} as const;

/** One of the values of {@linkcode ErrorCode}. */
export type ErrorCode = typeof ErrorCode[keyof typeof ErrorCode];

const CODES: ReadonlySet<string> = new Set(Object.values(ErrorCode));

/** Where an error happened: the run and, when known, the task. */
export interface ErrorContext {
  /** The workflow key of the run. */
  key?: string;
  /** The task's name. */
  task?: string;
  /** The attempt of the task. */
  attempt?: number;
  /** The underlying error. */
  cause?: unknown;
}

/**
 * An error with a stable {@linkcode ErrorCode}, and the run and task it concerns.
 *
 * @example Telling a definition mismatch apart
 * ```ts
 * import { ErrorCode, WorkflowError } from "@tradeline/workflow";
 *
 * function explain(error: unknown): string {
 *   if (error instanceof WorkflowError && error.code === ErrorCode.DefinitionMismatch) {
 *     return "update the remote to the server's version of the workflow";
 *   }
 *   return String(error);
 * }
 * ```
 */
export class WorkflowError extends Error {
  /** The stable code of this error. */
  readonly code: ErrorCode;
  /** The workflow key of the run, when known. */
  readonly key?: string;
  /** The task the error concerns, when known. */
  readonly task?: string;
  /** The attempt of the task, when known. */
  readonly attempt?: number;

  /**
   * Creates an error.
   *
   * @param code The stable code.
   * @param message What happened and what to do, in one or two sentences.
   * @param context The run and task the error concerns.
   */
  constructor(code: ErrorCode, message: string, context: ErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = "WorkflowError";
    this.code = code;
    if (context.key !== undefined) this.key = context.key;
    if (context.task !== undefined) this.task = context.task;
    if (context.attempt !== undefined) this.attempt = context.attempt;
  }
}

/** Returns `code` when it is a known {@linkcode ErrorCode}, and `Internal` otherwise. */
export function toErrorCode(code: string): ErrorCode {
  return CODES.has(code) ? code as ErrorCode : ErrorCode.Internal;
}

/** The code and message of any thrown value, for sending or recording. */
export function describeError(error: unknown): { code: ErrorCode; message: string } {
  const { code, message } = describe(error);
  // Well-formed and bounded, so that the record that keeps it can always be stored and sent.
  return { code, message: String(message).toWellFormed().slice(0, 4000) };
}

function describe(error: unknown): { code: ErrorCode; message: string } {
  if (error instanceof WorkflowError) return { code: error.code, message: error.message };
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    return { code: ErrorCode.PermissionDenied, message: error.message };
  }
  if (error instanceof Error) {
    return { code: ErrorCode.TaskFailed, message: `${error.name}: ${error.message}` };
  }
  return { code: ErrorCode.TaskFailed, message: String(error) };
}
