/**
 * The client's side of task isolation: each attempt of a remote task runs in its own
 * `deno run` subprocess, granted exactly the permissions the task declares (every kind
 * passed explicitly: what is not granted is denied), with a memory limit, killed when it
 * runs past its timeout or is cancelled. The subprocess is `sandbox_main.ts`; the two
 * talk over its standard input and output (`_frames.ts`), and the client keeps what the
 * task's context proxies: local data, live messages, progress and heartbeats.
 *
 * @module
 */
import type { AnyWorkflow, TaskDeclaration } from "../workflow/definition.ts";
import { describeError, ErrorCode, toErrorCode, WorkflowError } from "../workflow/errors.ts";
import type { AttemptOutcome } from "../workflow/attempt.ts";
import type { Value } from "../workflow/payload.ts";
import {
  formatPermissions,
  PERMISSION_KINDS,
  type Permissions,
  type ResolvedPermissions,
} from "../workflow/permissions.ts";
import type { TaskContext, TaskSet } from "../workflow/task.ts";
import { decodePayload, encodePayload } from "../proto/payload.ts";
import { encodeFrame, type Frame, FrameReader } from "./_frames.ts";
import { type IsolateProgram, startDeno } from "./_graph.ts";
import {
  formatReview,
  type Isolation,
  type PermissionReview,
  reviewDetails,
  type SandboxOptions,
} from "./review.ts";

/**
 * The hosts Deno lets any program import from unless told otherwise (the default of
 * `--allow-import`). An isolate without an import grant denies them explicitly.
 */
const DEFAULT_IMPORT_HOSTS = [
  "deno.land:443",
  "jsr.io:443",
  "esm.sh:443",
  "raw.esm.sh:443",
  "cdn.jsdelivr.net:443",
  "raw.githubusercontent.com:443",
  "gist.githubusercontent.com:443",
];

/** How long the last lines of an isolate's standard error are kept, in characters. */
const STDERR_TAIL = 4096;

/** What {@linkcode prepareIsolation} needs from the options of `connect()`. */
export interface IsolationOptions {
  /** The remote tasks. */
  tasks: TaskSet<AnyWorkflow, "remote">;
  /** How tasks run. */
  isolation?: Isolation;
  /** The ceiling. */
  allow?: Permissions;
  /** The working folder. */
  cwd?: string;
  /** Limits of the isolates. */
  sandbox?: SandboxOptions;
}

/** How one attempt runs: in an isolate, or (without isolation) in this process. */
export type AttemptRunner = (
  task: TaskDeclaration,
  input: Record<string, Value>,
  context: TaskContext,
  abort: AbortController,
) => Promise<AttemptOutcome>;

/** A client's isolation, prepared once per `connect()`. */
export interface PreparedIsolation {
  /** The review of the workflow's remote tasks. */
  readonly review: PermissionReview;
  /** Set when the client refuses the run: send it to the server, then fail with it. */
  readonly refusal?: WorkflowError;
  /** Runs an attempt in an isolate; `undefined` when tasks run in this process. */
  readonly run?: AttemptRunner;
  /** Kills every isolate still running and waits for them to exit. */
  close(): Promise<void>;
}

/**
 * Reviews the workflow against the ceiling and prepares the isolates, before the client
 * dials the server.
 *
 * @param options The tasks, the ceiling, the working folder and the isolation.
 * @param key The run's workflow key, for errors.
 * @throws {TypeError} When tasks must be isolated but their task set has no module URL.
 */
export async function prepareIsolation(
  options: IsolationOptions,
  key: string,
): Promise<PreparedIsolation> {
  const { tasks } = options;
  const workflow = tasks.workflow;
  if ((options.isolation ?? "process") === "process" && !tasks.module) {
    throw new TypeError(
      `Cannot run the remote tasks of workflow "${workflow.name}" (run "${key}") in isolates: their task set has no module URL. Pass { module: import.meta.url } to remoteTasks() in the module that exports them, or connect with isolation: "none" to run them in this process with all of its permissions (only for tests and fully trusted code)`,
    );
  }
  const { review, program } = await reviewDetails(tasks, options);
  const refusal = review.problems.length === 0 ? undefined : new WorkflowError(
    ErrorCode.PermissionDenied,
    `Run "${key}" refused: workflow "${workflow.name}" v${workflow.version} does not fit what this remote allows: ${
      review.problems.join("; ")
    }. Nothing ran. Widen the ceiling (connect({ allow })) only if you trust the workflow with that access`,
    { key },
  );
  if (!program) return { review, ...(refusal ? { refusal } : {}), close: () => Promise.resolve() };
  const pool = new IsolatePool(program, review, workflow.fingerprint, {
    killGrace: options.sandbox?.killGrace ?? 1000,
  });
  return {
    review,
    ...(refusal ? { refusal } : {}),
    run: (task, input, context, abort) => pool.run(task, input, context, abort),
    close: () => pool.close(),
  };
}

export { formatReview };

/** The Deno permission flags of one grant: every kind explicit, what is not granted denied. */
export function permissionFlags(
  grant: ResolvedPermissions,
  importHosts: readonly string[] = [],
): string[] {
  const flags: string[] = [];
  for (const kind of PERMISSION_KINDS) {
    const entries = grant[kind];
    if (kind === "import") {
      // Modules of the isolate's own graph load under the import permission too.
      const hosts = entries === true
        ? true
        : [...new Set([...(entries === false ? [] : entries), ...importHosts])];
      if (hosts === true) flags.push("--allow-import");
      else if (hosts.length > 0) flags.push(`--allow-import=${hosts.join(",")}`);
      else flags.push(`--deny-import=${DEFAULT_IMPORT_HOSTS.join(",")}`);
    } else if (entries === true) flags.push(`--allow-${kind}`);
    else if (entries === false) flags.push(`--deny-${kind}`);
    else flags.push(`--allow-${kind}=${entries.join(",")}`);
  }
  return flags;
}

interface Limits {
  killGrace: number;
}

/** Starts isolates and keeps track of the live ones. */
class IsolatePool {
  readonly #program: IsolateProgram;
  readonly #review: PermissionReview;
  readonly #fingerprint: string;
  readonly #limits: Limits;
  readonly #live = new Set<Deno.ChildProcess>();
  readonly #exits = new Set<Promise<unknown>>();
  #closed = false;

  constructor(
    program: IsolateProgram,
    review: PermissionReview,
    fingerprint: string,
    limits: Limits,
  ) {
    this.#program = program;
    this.#review = review;
    this.#fingerprint = fingerprint;
    this.#limits = limits;
  }

  async run(
    task: TaskDeclaration,
    input: Record<string, Value>,
    context: TaskContext,
    abort: AbortController,
  ): Promise<AttemptOutcome> {
    const reviewed = this.#review.tasks.find((t) => t.task === task.name);
    if (!reviewed || this.#closed) {
      return { ok: false, error: new WorkflowError(ErrorCode.Internal, "No isolate available") };
    }
    const memory = this.#review.memoryLimit;
    const child = startDeno(() =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          "--no-prompt",
          "--no-lock", // an isolate never writes the operator's lockfile
          ...this.#program.configArgs,
          `--v8-flags=--max-old-space-size=${memory},--enforce-global-heap-limit,--maximum-global-heap-limit-factor=1`,
          ...permissionFlags(reviewed.permissions, this.#review.graph?.hosts),
          this.#program.entry,
        ],
        cwd: this.#review.cwd,
        // Only what Deno needs to find its cache, and the variables the task may read:
        // a task granted a program to run must not hand it every secret of the client.
        clearEnv: true,
        env: isolateEnv(reviewed.permissions.env),
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn()
    );
    this.#live.add(child);
    const exit = child.status.finally(() => this.#live.delete(child));
    this.#exits.add(exit);
    try {
      return await new Attempt(child, {
        task,
        context,
        abort,
        grant: formatPermissions(reviewed.permissions),
        memory,
        killGrace: this.#limits.killGrace,
        module: this.#program.module,
        fingerprint: this.#fingerprint,
      }).run(input);
    } finally {
      this.#exits.delete(exit);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const child of this.#live) kill(child);
    await Promise.allSettled([...this.#exits]);
  }
}

function kill(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGKILL");
  } catch { /* already gone */ }
}

interface AttemptSetup {
  task: TaskDeclaration;
  context: TaskContext;
  abort: AbortController;
  grant: string;
  memory: number;
  killGrace: number;
  module: string;
  fingerprint: string;
}

/** One attempt in one isolate. */
class Attempt {
  readonly #child: Deno.ChildProcess;
  readonly #setup: AttemptSetup;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #writing: Promise<void> = Promise.resolve();
  #stderr = "";
  #outOfMemory = false;
  /** Why the client killed the isolate, when it did. */
  #killed?: WorkflowError;

  constructor(child: Deno.ChildProcess, setup: AttemptSetup) {
    this.#child = child;
    this.#setup = setup;
    this.#writer = child.stdin.getWriter();
  }

  get #where(): string {
    const { task, context } = this.#setup;
    return `Task "${task.name}" of run "${context.key}"`;
  }

  async run(input: Record<string, Value>): Promise<AttemptOutcome> {
    const { task, context } = this.#setup;
    const stderr = this.#readStderr();
    const timers: ReturnType<typeof setTimeout>[] = [];
    const at = { key: context.key, task: task.name, attempt: context.attempt };
    // At its timeout the attempt is aborted, as in-process: the isolate is told to stop (its
    // ctx.signal fires, its rollback runs); if it is still running killGrace ms later, for
    // example in a busy loop, it is killed.
    if (task.timeout > 0) {
      timers.push(setTimeout(() => {
        this.#setup.abort.abort(
          new WorkflowError(
            ErrorCode.TaskTimeout,
            `${this.#where} timed out after ${task.timeout} ms (attempt ${context.attempt})`,
            at,
          ),
        );
      }, task.timeout));
    }
    const onAbort = () => {
      const reason = asWorkflowError(context.signal.reason);
      this.#send({ t: "cancel", code: reason.code, message: reason.message });
      timers.push(setTimeout(() => {
        this.#killed ??= new WorkflowError(
          reason.code,
          `${reason.message}; its isolate did not stop within ${this.#setup.killGrace} ms and was killed`,
          { ...at, cause: reason },
        );
        kill(this.#child);
      }, this.#setup.killGrace));
    };
    if (context.signal.aborted) onAbort();
    else context.signal.addEventListener("abort", onAbort, { once: true });
    try {
      this.#send({
        t: "start",
        task: task.name,
        key: context.key,
        attempt: context.attempt,
        module: this.#setup.module,
        fingerprint: this.#setup.fingerprint,
        grant: this.#setup.grant,
        input: encodePayload(input, "input"),
      });
      const done = await this.#readFrames();
      if (done) return done;
      await stderr;
      return { ok: false, error: this.#exitError(await this.#child.status) };
    } catch (error) {
      return { ok: false, error };
    } finally {
      for (const timer of timers) clearTimeout(timer);
      context.signal.removeEventListener("abort", onAbort);
      kill(this.#child);
      await this.#writer.close().catch(() => {});
      await Promise.allSettled([this.#child.status, stderr]);
    }
  }

  #send(frame: Frame): void {
    const bytes = encodeFrame(frame);
    this.#writing = this.#writing.then(() => this.#writer.write(bytes)).catch(() => {});
  }

  /** Handles frames until the isolate reports its outcome, or its output ends. */
  async #readFrames(): Promise<AttemptOutcome | undefined> {
    const frames = new FrameReader(
      this.#child.stdout.getReader(),
      `The isolate of task "${this.#setup.task.name}"`,
    );
    try {
      for (let frame; (frame = await frames.next());) {
        if (frame.t === "done") return this.#outcome(frame);
        this.#handle(frame);
      }
      return undefined;
    } catch (error) {
      kill(this.#child);
      throw error;
    } finally {
      await frames.cancel();
    }
  }

  #outcome(frame: Frame): AttemptOutcome {
    const { task, context } = this.#setup;
    if (frame.ok === true && frame.output instanceof Uint8Array) {
      return {
        ok: true,
        output: decodePayload(frame.output, "output"),
        skipped: frame.skipped === true,
      };
    }
    return {
      ok: false,
      error: new WorkflowError(
        toErrorCode(String(frame.code)),
        String(frame.message ?? "The task failed"),
        { key: context.key, task: task.name, attempt: context.attempt },
      ),
    };
  }

  #handle(frame: Frame): void {
    const { context } = this.#setup;
    switch (frame.t) {
      case "progress":
        try {
          context.progress(Number(frame.fraction), String(frame.note ?? ""));
        } catch { /* the isolate checks the fraction; a bad one is dropped */ }
        return;
      case "heartbeat":
        context.heartbeat();
        return;
      case "call":
        this.#answer(frame);
        return;
      case "message":
        try {
          context.signal.throwIfAborted();
          if (!(frame.value instanceof Uint8Array)) throw new TypeError("no value");
          (context.messages as unknown as { send(topic: string, value: unknown): void }).send(
            String(frame.topic),
            decodePayload(frame.value, `message "${frame.topic}"`),
          );
        } catch { /* at most once: a message the client cannot pass on is dropped */ }
        return;
      default:
        throw new WorkflowError(
          ErrorCode.ProtocolViolation,
          `The isolate of task "${this.#setup.task.name}" sent an unknown "${frame.t}" frame`,
        );
    }
  }

  /** Runs a call of the task's context here, where local data and messages live. */
  async #answer(frame: Frame): Promise<void> {
    const { context } = this.#setup;
    const id = frame.id;
    const name = String(frame.name ?? "");
    const topic = String(frame.topic ?? "");
    const value = () => {
      if (!(frame.value instanceof Uint8Array)) throw new TypeError("The call carries no value");
      return decodePayload(frame.value, `value of "${frame.method}"`);
    };
    const messages = context.messages as unknown as {
      request(topic: string, value: unknown, options?: { timeout?: number }): Promise<unknown>;
      receive(topic: string): Promise<unknown>;
    };
    const encode = (result: unknown) =>
      result === undefined ? {} : { value: encodePayload(result, `result of "${frame.method}"`) };
    try {
      // An attempt that was cancelled or timed out may still be running until it is killed:
      // it must not touch local data or messages any more (a later attempt owns them).
      context.signal.throwIfAborted();
      let reply: { value?: Uint8Array } = {};
      switch (frame.method) {
        case "local.get":
          reply = encode(await context.local.get(name));
          break;
        case "local.set":
          await context.local.set(name, value());
          break;
        case "messages.request":
          reply = encode(
            await messages.request(
              topic,
              value(),
              typeof frame.timeout === "number" ? { timeout: frame.timeout } : undefined,
            ),
          );
          break;
        case "messages.receive":
          reply = encode(await messages.receive(topic));
          break;
        default:
          throw new TypeError(`Unknown call "${frame.method}"`);
      }
      this.#send({ t: "reply", id, ...reply });
    } catch (error) {
      this.#send({ t: "reply", id, error: describeError(error) });
    }
  }

  /** Forwards the isolate's standard error (the task's console) and keeps its tail. */
  async #readStderr(): Promise<void> {
    for await (const text of this.#child.stderr.pipeThrough(new TextDecoderStream())) {
      if (/Fatal JavaScript out of memory|<--- Last few GCs --->/.test(text)) {
        this.#outOfMemory = true;
      }
      this.#stderr = (this.#stderr + text).slice(-STDERR_TAIL);
      if (!this.#outOfMemory) await Deno.stderr.write(new TextEncoder().encode(text));
    }
  }

  #exitError(status: Deno.CommandStatus): WorkflowError {
    const { task, context } = this.#setup;
    const at = { key: context.key, task: task.name, attempt: context.attempt };
    if (this.#killed) return this.#killed;
    if (this.#outOfMemory || status.signal === "SIGTRAP") {
      return new WorkflowError(
        ErrorCode.ResourceExhausted,
        `${this.#where} ran out of memory (attempt ${context.attempt}): its isolate passed its limit of ${this.#setup.memory} MiB and was stopped; the client is unharmed. Raise sandbox.memoryLimit if the task needs more`,
        at,
      );
    }
    const last = this.#stderr.trim().split("\n").slice(-3).join(" | ");
    return new WorkflowError(
      ErrorCode.TaskFailed,
      `${this.#where} ended before it finished (attempt ${context.attempt}): its isolate exited with ${
        status.signal ? `signal ${status.signal}` : `code ${status.code}`
      }${last ? `: ${last}` : ""}`,
      at,
    );
  }
}

function asWorkflowError(reason: unknown): WorkflowError {
  if (reason instanceof WorkflowError) return reason;
  const { code, message } = describeError(reason);
  return new WorkflowError(code, message);
}

/** The environment of an isolate: Deno's own variables and the ones the task may read. */
function isolateEnv(grant: unknown): Record<string, string> {
  // Each read is guarded: the client itself may run with a narrow --allow-env.
  const read = (name: string) => {
    try {
      return Deno.env.get(name);
    } catch {
      return undefined;
    }
  };
  const everything = () => {
    try {
      return Deno.env.toObject();
    } catch {
      return {};
    }
  };
  const env: Record<string, string> = { NO_COLOR: "1" };
  for (const name of ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR", "DENO_CERT"]) {
    const value = read(name);
    if (value !== undefined) env[name] = value;
  }
  if (grant === true) return { ...everything(), ...env };
  if (Array.isArray(grant)) {
    for (const pattern of grant as string[]) {
      if (!pattern.endsWith("*")) {
        const value = read(pattern);
        if (value !== undefined) env[pattern] = value;
        continue;
      }
      for (const [name, value] of Object.entries(everything())) {
        if (name.startsWith(pattern.slice(0, -1))) env[name] = value;
      }
    }
  }
  return env;
}
