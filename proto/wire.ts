/**
 * The frames of the `Connect` call, as plain typed objects, and their validated encoding.
 *
 * This is the one place that touches the generated protobuf code for frames; nothing from
 * the wire reaches the engine before `decodeRemoteFrame` or `decodeServerFrame` checked it.
 *
 * @module
 */
import { tradeline } from "./_gen/workflow.js";
import { ErrorCode, WorkflowError } from "../workflow/errors.ts";
import type { Side } from "../workflow/definition.ts";

const v1 = tradeline.workflow.v1;

/** The protocol version this code speaks. */
export const PROTOCOL_VERSION = 1;
/** The gRPC method path of the one call. */
export const CONNECT_PATH = "/tradeline.workflow.v1.WorkflowService/Connect";

/** Task statuses as they travel. */
export type TaskStatus =
  | "pending"
  | "running"
  | "completed"
  | "failed"
  | "skipped"
  | "retrying"
  | "cancelled";

const STATUSES: readonly TaskStatus[] = [
  "pending",
  "running",
  "completed",
  "failed",
  "skipped",
  "retrying",
  "cancelled",
];

export interface ErrorInfo {
  code: string;
  message: string;
}
export interface TaskDescriptor {
  name: string;
  side: Side;
}
export interface Output {
  task: string;
  value: Uint8Array;
}
export interface Hello {
  protocolVersion: number;
  workflowKey: string;
  definitionName: string;
  definitionVersion: number;
  fingerprint: string;
  tasks: TaskDescriptor[];
}
export interface TaskResult {
  task: string;
  attempt: number;
  output: Uint8Array;
}
export interface TaskFailure {
  task: string;
  attempt: number;
  error: ErrorInfo;
}
export interface Progress {
  task: string;
  attempt: number;
  fraction: number;
  note: string;
}
export interface LiveMessage {
  task: string;
  attempt: number;
  topic: string;
  sequence: number;
  replyTo: number;
  value: Uint8Array;
}
export interface Heartbeat {
  task: string;
  attempt: number;
}
export interface Refusal {
  error: ErrorInfo;
}
export interface TaskEvent {
  task: string;
  attempt: number;
  status: TaskStatus;
  durationMs: number;
  error?: ErrorInfo;
}
export interface Welcome {
  nextTask: number;
  outputs: Output[];
  tasks: TaskEvent[];
}
export interface Dispatch {
  task: string;
  attempt: number;
  outputs: Output[];
  timeoutMs: number;
  heartbeatMs: number;
}
export interface RunCompleted {
  outputs: Output[];
}
export interface RunFailed {
  task: string;
  error: ErrorInfo;
}
export interface CancelTask {
  task: string;
  attempt: number;
  reason: string;
}

/** Everything a remote sends. */
export type RemoteFrame =
  | { kind: "hello"; hello: Hello }
  | { kind: "result"; result: TaskResult }
  | { kind: "failure"; failure: TaskFailure }
  | { kind: "progress"; progress: Progress }
  | { kind: "message"; message: LiveMessage }
  | { kind: "heartbeat"; heartbeat: Heartbeat }
  | { kind: "refusal"; refusal: Refusal };

/** Everything a server sends. */
export type ServerFrame =
  | { kind: "welcome"; welcome: Welcome }
  | { kind: "dispatch"; dispatch: Dispatch }
  | { kind: "progress"; progress: Progress }
  | { kind: "message"; message: LiveMessage }
  | { kind: "taskEvent"; taskEvent: TaskEvent }
  | { kind: "completed"; completed: RunCompleted }
  | { kind: "failed"; failed: RunFailed }
  | { kind: "cancel"; cancel: CancelTask };

/** Encodes a frame a remote sends. */
export function encodeRemoteFrame(frame: RemoteFrame): Uint8Array {
  return v1.RemoteFrame.encode(toMessage(frame) as tradeline.workflow.v1.RemoteFrame.$Properties)
    .finish();
}

/** Encodes a frame a server sends. */
export function encodeServerFrame(frame: ServerFrame): Uint8Array {
  return v1.ServerFrame.encode(toMessage(frame) as tradeline.workflow.v1.ServerFrame.$Properties)
    .finish();
}

function toMessage(frame: RemoteFrame | ServerFrame): Record<string, unknown> {
  const body = (frame as unknown as Record<string, Record<string, unknown>>)[frame.kind];
  if (frame.kind === "hello") {
    const hello = body as unknown as Hello;
    return {
      hello: {
        ...hello,
        tasks: hello.tasks.map((t) => ({ name: t.name, side: t.side === "server" ? 1 : 2 })),
      },
    };
  }
  if (frame.kind === "taskEvent") {
    return { taskEvent: taskEventToWire(body as unknown as TaskEvent) };
  }
  if (frame.kind === "welcome") {
    const welcome = body as unknown as Welcome;
    return { welcome: { ...welcome, tasks: welcome.tasks.map(taskEventToWire) } };
  }
  return { [frame.kind]: body };
}

function taskEventToWire(event: TaskEvent): Record<string, unknown> {
  return { ...event, status: STATUSES.indexOf(event.status) + 1 };
}

/** Thrown for a frame that breaks the protocol; the call ends with `INVALID_ARGUMENT`. */
function violation(message: string, cause?: unknown): WorkflowError {
  return new WorkflowError(ErrorCode.ProtocolViolation, message, { cause });
}

const TASK_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const FINGERPRINT = /^[0-9a-f]{64}$/;
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;
const MAX_TASKS = 10_000;
const MAX_TEXT = 16 * 1024;
const MAX_NOTE = 1024;

/** Checks a workflow key: 1 to 256 characters, no control characters. */
export function checkWorkflowKey(key: unknown, where: string): string {
  if (typeof key !== "string" || key.length === 0 || key.length > 256 || CONTROL.test(key)) {
    throw violation(
      `${where}: the workflow key must be 1 to 256 characters with no control characters, got ${
        JSON.stringify(typeof key === "string" ? key.slice(0, 40) : key)
      }`,
    );
  }
  if (key === "." || key === "..") {
    // Such a key cannot be named in a URL path (the dashboard's, the CLI's).
    throw violation(`${where}: the workflow key cannot be "${key}"`);
  }
  return key;
}

function taskName(value: string | null | undefined, where: string): string {
  if (!value || !TASK_NAME.test(value)) {
    throw violation(`${where}: task name ${JSON.stringify(value ?? "")} is not a valid task name`);
  }
  return value;
}

function attempt(value: number | null | undefined, where: string): number {
  if (!value || value < 1 || value > 1_000_000) {
    throw violation(`${where}: attempt must be 1 or more, got ${value ?? 0}`);
  }
  return value;
}

function text(value: string | null | undefined, where: string, max = MAX_TEXT): string {
  const s = value ?? "";
  if (s.length > max) throw violation(`${where}: longer than ${max} characters`);
  return s;
}

function errorInfo(
  value: tradeline.workflow.v1.ErrorInfo.$Properties | null | undefined,
  where: string,
): ErrorInfo {
  return {
    code: text(value?.code, `${where}.code`, 64),
    message: text(value?.message, `${where}.message`),
  };
}

function bytes(value: Uint8Array | null | undefined): Uint8Array {
  // A copy: the decoder's buffer may be pooled and reused by the transport.
  return value ? new Uint8Array(value) : new Uint8Array();
}

function outputs(
  list: tradeline.workflow.v1.Output.$Properties[] | null | undefined,
  where: string,
): Output[] {
  return (list ?? []).map((o, i) => ({
    task: taskName(o.task, `${where}[${i}]`),
    value: bytes(o.value),
  }));
}

function status(value: number | null | undefined, where: string): TaskStatus {
  const s = STATUSES[(value ?? 0) - 1];
  if (!s) throw violation(`${where}: unknown task status ${value}`);
  return s;
}

function taskEvent(e: tradeline.workflow.v1.TaskEvent.$Properties, where: string): TaskEvent {
  const event: TaskEvent = {
    task: taskName(e.task, where),
    attempt: e.attempt ?? 0,
    status: status(e.status, where),
    durationMs: e.durationMs ?? 0,
  };
  if (e.error) event.error = errorInfo(e.error, `${where}.error`);
  return event;
}

/**
 * Decodes and checks a frame from a remote.
 *
 * @throws {WorkflowError} `ProtocolViolation` naming what was wrong.
 */
export function decodeRemoteFrame(data: Uint8Array): RemoteFrame {
  let m: tradeline.workflow.v1.RemoteFrame;
  try {
    m = v1.RemoteFrame.decode(data);
  } catch (error) {
    throw violation(`Malformed frame: ${(error as Error).message}`, error);
  }
  switch (m.frame) {
    case "hello": {
      const h = m.hello!;
      if (h.protocolVersion !== PROTOCOL_VERSION) {
        throw violation(
          `hello: protocol version ${
            h.protocolVersion ?? 0
          } is not supported (this server speaks ${PROTOCOL_VERSION})`,
        );
      }
      const tasks = h.tasks ?? [];
      if (tasks.length > MAX_TASKS) throw violation(`hello: more than ${MAX_TASKS} tasks`);
      if (!h.definitionName || !TASK_NAME.test(h.definitionName)) {
        throw violation(
          `hello: definition name ${JSON.stringify(h.definitionName ?? "")} is not valid`,
        );
      }
      if (!h.fingerprint || !FINGERPRINT.test(h.fingerprint)) {
        throw violation("hello: fingerprint must be 64 lowercase hex digits");
      }
      return {
        kind: "hello",
        hello: {
          protocolVersion: h.protocolVersion,
          workflowKey: checkWorkflowKey(h.workflowKey, "hello"),
          definitionName: h.definitionName,
          definitionVersion: h.definitionVersion ?? 0,
          fingerprint: h.fingerprint,
          tasks: tasks.map((t, i) => {
            if (t.side !== 1 && t.side !== 2) {
              throw violation(`hello.tasks[${i}]: unknown side ${t.side}`);
            }
            return {
              name: taskName(t.name, `hello.tasks[${i}]`),
              side: t.side === 1 ? "server" : "remote",
            };
          }),
        },
      };
    }
    case "result": {
      const r = m.result!;
      return {
        kind: "result",
        result: {
          task: taskName(r.task, "result"),
          attempt: attempt(r.attempt, "result"),
          output: bytes(r.output),
        },
      };
    }
    case "failure": {
      const f = m.failure!;
      return {
        kind: "failure",
        failure: {
          task: taskName(f.task, "failure"),
          attempt: attempt(f.attempt, "failure"),
          error: errorInfo(f.error, "failure.error"),
        },
      };
    }
    case "progress":
      return { kind: "progress", progress: progress(m.progress!) };
    case "message":
      return { kind: "message", message: liveMessage(m.message!) };
    case "heartbeat": {
      const b = m.heartbeat!;
      return {
        kind: "heartbeat",
        heartbeat: {
          task: taskName(b.task, "heartbeat"),
          attempt: attempt(b.attempt, "heartbeat"),
        },
      };
    }
    case "refusal":
      return { kind: "refusal", refusal: { error: errorInfo(m.refusal!.error, "refusal.error") } };
    default:
      throw violation("Empty frame: it carries none of the known frame kinds");
  }
}

function progress(p: tradeline.workflow.v1.Progress.$Properties): Progress {
  const fraction = p.fraction ?? 0;
  if (!Number.isFinite(fraction) || fraction < 0 || fraction > 1) {
    throw violation(`progress: fraction must be between 0 and 1, got ${fraction}`);
  }
  return {
    task: taskName(p.task, "progress"),
    attempt: attempt(p.attempt, "progress"),
    fraction,
    note: text(p.note, "progress.note", MAX_NOTE),
  };
}

function liveMessage(l: tradeline.workflow.v1.LiveMessage.$Properties): LiveMessage {
  // A message is sent by a task (its name and attempt) or by the run itself (no task).
  const fromTask = Boolean(l.task);
  return {
    task: fromTask ? taskName(l.task, "message") : "",
    attempt: fromTask ? attempt(l.attempt, "message") : 0,
    topic: taskName(l.topic, "message.topic"),
    sequence: l.sequence ?? 0,
    replyTo: l.replyTo ?? 0,
    value: bytes(l.value),
  };
}

/**
 * Decodes and checks a frame from the server.
 *
 * @throws {WorkflowError} `ProtocolViolation` naming what was wrong.
 */
export function decodeServerFrame(data: Uint8Array): ServerFrame {
  let m: tradeline.workflow.v1.ServerFrame;
  try {
    m = v1.ServerFrame.decode(data);
  } catch (error) {
    throw violation(`Malformed frame from the server: ${(error as Error).message}`, error);
  }
  switch (m.frame) {
    case "welcome": {
      const w = m.welcome!;
      return {
        kind: "welcome",
        welcome: {
          nextTask: w.nextTask ?? 0,
          outputs: outputs(w.outputs, "welcome.outputs"),
          tasks: (w.tasks ?? []).map((t, i) => taskEvent(t, `welcome.tasks[${i}]`)),
        },
      };
    }
    case "dispatch": {
      const d = m.dispatch!;
      return {
        kind: "dispatch",
        dispatch: {
          task: taskName(d.task, "dispatch"),
          attempt: attempt(d.attempt, "dispatch"),
          outputs: outputs(d.outputs, "dispatch.outputs"),
          timeoutMs: d.timeoutMs ?? 0,
          heartbeatMs: d.heartbeatMs ?? 0,
        },
      };
    }
    case "progress":
      return { kind: "progress", progress: progress(m.progress!) };
    case "message":
      return { kind: "message", message: liveMessage(m.message!) };
    case "taskEvent":
      return { kind: "taskEvent", taskEvent: taskEvent(m.taskEvent!, "taskEvent") };
    case "completed":
      return {
        kind: "completed",
        completed: { outputs: outputs(m.completed!.outputs, "completed.outputs") },
      };
    case "failed":
      return {
        kind: "failed",
        failed: { task: m.failed!.task ?? "", error: errorInfo(m.failed!.error, "failed.error") },
      };
    case "cancel": {
      const c = m.cancel!;
      return {
        kind: "cancel",
        cancel: {
          task: taskName(c.task, "cancel"),
          attempt: attempt(c.attempt, "cancel"),
          reason: text(c.reason, "cancel.reason", MAX_NOTE),
        },
      };
    }
    default:
      throw violation("Empty frame from the server: it carries none of the known frame kinds");
  }
}
