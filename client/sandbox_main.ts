/**
 * The entry of a task isolate: the `deno run` subprocess in which one attempt of a remote
 * task runs with exactly the permissions the task declares. `client/sandbox.ts` starts it
 * with an entry module that calls {@linkcode main}; it is not meant to be used directly.
 *
 * The isolate talks to the client over its standard input and output (see `_frames.ts`):
 * the client sends the attempt, the isolate runs it and proxies `ctx.local`,
 * `ctx.messages`, `ctx.progress` and `ctx.heartbeat` to the client, which owns them.
 *
 * @module
 */
import { Console } from "node:console";
import { registerHooks } from "node:module";
import process from "node:process";
import { runAttempt } from "../workflow/attempt.ts";
import type { TaskDeclaration } from "../workflow/definition.ts";
import { describeError, ErrorCode, WorkflowError } from "../workflow/errors.ts";
import type { Value } from "../workflow/payload.ts";
import type { AnyTaskHooks, LocalData, TaskContext } from "../workflow/task.ts";
import { decodePayload, encodePayload } from "../proto/payload.ts";
import { encodeFrame, type Frame, FrameReader } from "./_frames.ts";
import { deniedAccess } from "./_denied.ts";

/** Built-in modules a task may not import: they start Workers or change how modules load. */
const BLOCKED_BUILTINS: ReadonlySet<string> = new Set([
  "worker_threads",
  "node:worker_threads",
  "module",
  "node:module",
]);

interface Start {
  task: string;
  key: string;
  attempt: number;
  module: string;
  fingerprint: string;
  grant: string;
  input: Uint8Array;
}

type Reply = { value?: Uint8Array; error?: { code: string; message: string } };

/**
 * Runs one attempt: reads it from standard input, loads the task module through `load`,
 * runs the task and writes its outcome to standard output, then exits.
 *
 * @param load Imports the task module (a literal `import()` in the entry module, so that
 * the module graph loads as part of the isolate's program, not under the task's grant).
 */
export async function main(load: () => Promise<Record<string, unknown>>): Promise<void> {
  const output = Deno.stdout.writable.getWriter();
  const frames = new FrameReader(Deno.stdin.readable.getReader(), "the client");
  let writing: Promise<void> = Promise.resolve();
  const send = (frame: Frame): Promise<void> => {
    const bytes = encodeFrame(frame);
    writing = writing.then(() => output.write(bytes)).catch(() => {});
    return writing;
  };
  installGuards();

  const start = checkStart(await frames.next());
  const where = `task "${start.task}" of run "${start.key}"`;
  const finish = async (frame: Frame): Promise<never> => {
    await send(frame);
    Deno.exit(0);
  };
  const fail = (error: unknown) =>
    finish({ t: "done", ok: false, ...failure(error, start, where) });

  let hooks: AnyTaskHooks;
  let declaration: TaskDeclaration;
  try {
    [hooks, declaration] = findTask(await load(), start);
  } catch (error) {
    if (error instanceof WorkflowError) return await fail(error);
    const access = deniedAccess(error);
    return await fail(
      new WorkflowError(
        access ? ErrorCode.PermissionDenied : ErrorCode.InvalidImplementation,
        `Cannot load the task module ${start.module} in the isolate of ${where}: ${
          (error as Error)?.message ?? error
        }. The module and everything it imports run with the task's permissions (${start.grant}): import the workflow from "@tradeline/workflow/define", not the package root (which loads gRPC)`,
        { key: start.key, task: start.task, attempt: start.attempt },
      ),
    );
  }

  // Calls to the client: local data and messages live there.
  const abort = new AbortController();
  const pending = new Map<number, (reply: Reply) => void>();
  let nextId = 1;
  const call = (method: string, fields: Record<string, Value>): Promise<Uint8Array | undefined> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, (reply) => {
        if (reply.error) {
          reject(
            new WorkflowError(
              (reply.error.code in ErrorCode ? reply.error.code : ErrorCode.Internal) as ErrorCode,
              reply.error.message,
              { key: start.key, task: start.task, attempt: start.attempt },
            ),
          );
        } else resolve(reply.value);
      });
      send({ t: "call", id, method, ...fields });
    });
  (async () => {
    try {
      for (let frame; (frame = await frames.next());) {
        if (frame.t === "reply" && typeof frame.id === "number") {
          const resolve = pending.get(frame.id);
          pending.delete(frame.id);
          resolve?.(frame as Reply);
        } else if (frame.t === "cancel") {
          abort.abort(
            new WorkflowError(
              (String(frame.code) in ErrorCode ? frame.code : ErrorCode.Cancelled) as ErrorCode,
              String(frame.message),
              { key: start.key, task: start.task, attempt: start.attempt },
            ),
          );
        }
      }
    } catch (error) {
      abort.abort(error);
    }
    // The client went away: nobody is left to report to.
    Deno.exit(1);
  })();

  const decode = (bytes: Uint8Array | undefined, path: string): Value =>
    bytes === undefined ? undefined : decodePayload(bytes, path);
  const local: LocalData = {
    async get<T extends Value = Value>(name: string): Promise<T | undefined> {
      return decode(await call("local.get", { name: String(name) }), `local "${name}"`) as T;
    },
    async set(name: string, value: Value): Promise<void> {
      const bytes = encodePayload(value, `local "${name}"`);
      await call("local.set", { name: String(name), value: bytes });
    },
  };
  const context: TaskContext = {
    key: start.key,
    task: start.task,
    attempt: start.attempt,
    side: "remote",
    signal: abort.signal,
    local,
    progress(fraction: number, note = "") {
      if (!Number.isFinite(fraction) || fraction < 0 || fraction > 1) {
        throw new RangeError(`Cannot report progress ${fraction}: expected a fraction from 0 to 1`);
      }
      send({ t: "progress", fraction, note: String(note).slice(0, 1024) });
    },
    heartbeat() {
      send({ t: "heartbeat" });
    },
    messages: {
      send(topic: string, value: unknown) {
        // One way and in order, like in the client: no answer to wait for.
        send({
          t: "message",
          topic: String(topic),
          value: encodePayload(value, `message "${topic}"`),
        });
      },
      async request(topic: string, value: unknown, options?: { timeout?: number }) {
        const bytes = encodePayload(value, `message "${topic}"`);
        const reply = await call("messages.request", {
          topic: String(topic),
          value: bytes,
          ...(options?.timeout === undefined ? {} : { timeout: Number(options.timeout) }),
        });
        return decode(reply, `reply to "${topic}"`);
      },
      async receive(topic: string) {
        return decode(await call("messages.receive", { topic: String(topic) }), `"${topic}"`);
      },
    } as unknown as TaskContext["messages"],
  };

  const input = decodePayload(start.input, "input") as Record<string, Value>;
  const outcome = await runAttempt(hooks, declaration, input, context, abort);
  if (!outcome.ok) return await fail(outcome.error);
  let bytes: Uint8Array;
  try {
    bytes = encodePayload(outcome.output, "output");
  } catch (error) {
    return await fail(
      new WorkflowError(
        ErrorCode.InvalidPayload,
        `Task "${start.task}" of run "${start.key}" returned an output that cannot be sent: ${
          (error as Error).message
        }`,
        { key: start.key, task: start.task, attempt: start.attempt, cause: error },
      ),
    );
  }
  await finish({ t: "done", ok: true, output: bytes, skipped: outcome.skipped });
}

/** The code and message of a failed attempt; a denied access names the task and the access. */
function failure(
  error: unknown,
  start: Start,
  where: string,
): { code: string; message: string } {
  const access = deniedAccess(error);
  if (access) {
    return {
      code: ErrorCode.PermissionDenied,
      message:
        `Task "${start.task}" of run "${start.key}" was denied ${access} (attempt ${start.attempt}): it runs with only the permissions it declares (${start.grant})`,
    };
  }
  const described = describeError(error);
  if (described.code === ErrorCode.InvalidImplementation && !described.message.includes(where)) {
    return { code: described.code, message: `${described.message} (${where})` };
  }
  return described;
}

function checkStart(frame: Frame | undefined): Start {
  const ok = frame?.t === "start" && typeof frame.task === "string" &&
    typeof frame.key === "string" && typeof frame.attempt === "number" &&
    typeof frame.module === "string" && typeof frame.fingerprint === "string" &&
    typeof frame.grant === "string" && frame.input instanceof Uint8Array;
  if (!ok) {
    throw new WorkflowError(ErrorCode.ProtocolViolation, "The client sent no valid start frame");
  }
  return frame as unknown as Start;
}

/** The hooks and the declaration of the task, from the TaskSet the module exports. */
function findTask(
  exports: Record<string, unknown>,
  start: Start,
): [AnyTaskHooks, TaskDeclaration] {
  const found = new Set<
    { hooks(name: string): AnyTaskHooks; workflow: { task(n: string): unknown } }
  >();
  for (const value of Object.values(exports)) {
    const candidate = value as {
      side?: unknown;
      workflow?: { fingerprint?: unknown; task?: unknown };
      hooks?: unknown;
    } | null;
    if (
      candidate && typeof candidate === "object" && candidate.side === "remote" &&
      typeof candidate.hooks === "function" && typeof candidate.workflow?.task === "function" &&
      candidate.workflow.fingerprint === start.fingerprint
    ) {
      found.add(candidate as never);
    }
  }
  if (found.size !== 1) {
    throw new WorkflowError(
      ErrorCode.InvalidImplementation,
      `The task module ${start.module} ${
        found.size === 0 ? "exports no" : "exports more than one"
      } set of remote tasks of this workflow (fingerprint ${
        start.fingerprint.slice(0, 12)
      }): export exactly one value made by remoteTasks(workflow, implementations, { module: import.meta.url })`,
      { key: start.key, task: start.task, attempt: start.attempt },
    );
  }
  const [tasks] = found;
  const declaration = tasks.workflow.task(start.task) as TaskDeclaration | undefined;
  if (!declaration || declaration.side !== "remote") {
    throw new WorkflowError(
      ErrorCode.InvalidImplementation,
      `The task module ${start.module} has no remote task "${start.task}"`,
      { key: start.key, task: start.task, attempt: start.attempt },
    );
  }
  return [tasks.hooks(start.task), declaration];
}

/**
 * Closes what the permission flags do not cover, before any task code loads: console
 * output goes to standard error (standard output carries frames), and Workers, `data:` and
 * `blob:` imports and module-loader hooks are refused. None of these would widen the grant
 * (Deno checks what they do against the same permissions); refusing them keeps the code
 * that runs the code the operator reviewed.
 */
function installGuards(): void {
  const refuse = (access: string) =>
    new Deno.errors.NotCapable(`Requires ${access}, which a task isolate never grants`);
  globalThis.console = new Console({
    stdout: process.stderr,
    stderr: process.stderr,
  }) as unknown as Console & typeof globalThis.console;
  try {
    Object.defineProperty(Deno, "stdout", { value: Deno.stderr, configurable: false });
    Object.defineProperty(process, "stdout", { get: () => process.stderr, configurable: false });
  } catch { /* stdout stays; stray bytes on it are then reported as such */ }
  class Worker {
    constructor(specifier: string | URL) {
      throw refuse(`worker access to "${String(specifier).slice(0, 80)}"`);
    }
  }
  Object.defineProperty(globalThis, "Worker", { value: Worker, configurable: false });
  const getBuiltinModule = process.getBuiltinModule?.bind(process);
  if (getBuiltinModule) {
    process.getBuiltinModule = ((id: string) => {
      if (BLOCKED_BUILTINS.has(id)) throw refuse(`import access to "${id}"`);
      return getBuiltinModule(id);
    }) as typeof process.getBuiltinModule;
  }
  const check = (specifier: string) => {
    if (/^(data|blob):/i.test(specifier)) {
      throw refuse(`import access to "${specifier.slice(0, 40)}..."`);
    }
    if (BLOCKED_BUILTINS.has(specifier)) throw refuse(`import access to "${specifier}"`);
  };
  registerHooks({
    resolve(specifier, context, next) {
      check(specifier);
      const resolved = next(specifier, context);
      check(resolved.url);
      return resolved;
    },
  });
}
