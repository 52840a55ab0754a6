/**
 * The one pair of functions that maps {@linkcode WorkflowError}s to gRPC statuses and back.
 * The error's stable code travels in the `workflow-error-code` trailer.
 *
 * @module
 */
import { Metadata, status as Status } from "@grpc/grpc-js";
import { ErrorCode, toErrorCode, WorkflowError } from "../workflow/errors.ts";

const CODE_KEY = "workflow-error-code";
const KEY_KEY = "workflow-key";
const TASK_KEY = "workflow-task";

const TO_STATUS: Record<ErrorCode, Status> = {
  DefinitionMismatch: Status.FAILED_PRECONDITION,
  UnknownWorkflow: Status.NOT_FOUND,
  TaskFailed: Status.ABORTED,
  TaskTimeout: Status.DEADLINE_EXCEEDED,
  RunFailed: Status.ABORTED,
  Cancelled: Status.CANCELLED,
  Unavailable: Status.UNAVAILABLE,
  ProtocolViolation: Status.INVALID_ARGUMENT,
  InvalidPayload: Status.INVALID_ARGUMENT,
  RunBusy: Status.ALREADY_EXISTS,
  InvalidImplementation: Status.FAILED_PRECONDITION,
  PermissionDenied: Status.PERMISSION_DENIED,
  Unauthenticated: Status.UNAUTHENTICATED,
  ResourceExhausted: Status.RESOURCE_EXHAUSTED,
  ShuttingDown: Status.UNAVAILABLE,
  Conflict: Status.ABORTED,
  Internal: Status.INTERNAL,
};

const FROM_STATUS: Partial<Record<Status, ErrorCode>> = {
  [Status.UNAVAILABLE]: ErrorCode.Unavailable,
  [Status.DEADLINE_EXCEEDED]: ErrorCode.Unavailable,
  // Without our trailer, a cancelled call was cut by the transport or a server going away:
  // the run itself goes on (a cancelled run says so in its trailer).
  [Status.CANCELLED]: ErrorCode.Unavailable,
  [Status.UNAUTHENTICATED]: ErrorCode.Unauthenticated,
  [Status.PERMISSION_DENIED]: ErrorCode.PermissionDenied,
  [Status.RESOURCE_EXHAUSTED]: ErrorCode.ResourceExhausted,
  [Status.INVALID_ARGUMENT]: ErrorCode.ProtocolViolation,
  [Status.NOT_FOUND]: ErrorCode.UnknownWorkflow,
  [Status.ALREADY_EXISTS]: ErrorCode.RunBusy,
};

/** A gRPC status object, as grpc-js emits and accepts them. */
export interface StatusObject {
  code: Status;
  details: string;
  metadata: Metadata;
}

/** The gRPC status that carries `error`. */
export function toStatus(error: WorkflowError): StatusObject {
  const metadata = new Metadata();
  metadata.set(CODE_KEY, error.code);
  if (error.key !== undefined) metadata.set(KEY_KEY, encodeURIComponent(error.key));
  if (error.task !== undefined) metadata.set(TASK_KEY, error.task);
  return { code: TO_STATUS[error.code], details: error.message, metadata };
}

/** The {@linkcode WorkflowError} a gRPC status carries. */
export function fromStatus(
  status: { code: Status; details: string; metadata?: Metadata },
  fallbackKey?: string,
): WorkflowError {
  const code = String(status.metadata?.get(CODE_KEY)[0] ?? "");
  const key = status.metadata?.get(KEY_KEY)[0];
  const task = status.metadata?.get(TASK_KEY)[0];
  return new WorkflowError(
    code ? toErrorCode(code) : FROM_STATUS[status.code] ?? ErrorCode.Internal,
    explain(status) || `gRPC status ${Status[status.code] ?? status.code}`,
    {
      key: key ? safeDecode(String(key)) : fallbackKey,
      ...(task ? { task: String(task) } : {}),
    },
  );
}

/** grpc-js's own terse text for a frame over the receiver's size limit. */
const TOO_LARGE = /^Received message larger than max \((\d+) vs\.? (\d+)\)$/;

/** A status's details, with grpc-js's message-size text made into one that says what to do. */
function explain(status: { code: Status; details: string }): string {
  const match = status.code === Status.RESOURCE_EXHAUSTED ? status.details?.match(TOO_LARGE) : null;
  if (!match) return status.details;
  const [size, limit] = [Number(match[1]), Number(match[2])];
  return `A frame of ${mib(size)} (${size} bytes) was refused: it is over the ${mib(limit)} ` +
    `(${limit} bytes) message size limit of the side that received it. Raise the limit ` +
    `on both sides, serve({ limits: { maxMessageBytes } }) on the server and ` +
    `connect({ maxMessageBytes }) on the remote, or send less data`;
}

function mib(bytes: number): string {
  return `${+(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

export { Status };
