/**
 * The server's workflow engine: matches a remote's hello to a definition and a run, and
 * owns the runs in memory. Pure: no gRPC here, so it is tested without a socket.
 *
 * @module
 */
import { firstDifference } from "../workflow/definition.ts";
import { ErrorCode, WorkflowError } from "../workflow/errors.ts";
import {
  markCancelled,
  RECORD_SCHEMA,
  type RunRecord,
  type WorkflowEvent,
} from "../workflow/state.ts";
import type { TaskSet } from "../workflow/task.ts";
import type { Hello } from "../proto/wire.ts";
import { notAccessible } from "./auth.ts";
import type { EventHub } from "./events.ts";
import { type Connection, Run, type RunEnvironment } from "./run.ts";
import type { RunStore } from "./store.ts";

/** Options of {@linkcode Engine}. */
export interface EngineOptions {
  /** The server-side implementations of every hosted definition. */
  workflows: readonly TaskSet[];
  /** Where runs are persisted. */
  store: RunStore;
  /** Where events go. */
  events: EventHub;
  /** Called when a run completes or fails. */
  onFinished?: (run: Run) => void;
  /** Called before a hello creates a run; throws to refuse it (the runs-per-principal limit). */
  admit?: (key: string, principal: string | undefined) => void;
  /** The clock. */
  now?: () => number;
  /** This server, as run leases name it (see {@linkcode Engine.holder}). */
  holder?: string;
  /** How long a run's lease lasts after each write, in ms. */
  leaseTime?: number;
}

/** Who says hello: the principal a run must belong to (`undefined`: no authentication). */
interface Owner {
  principal: string | undefined;
}

/** Matches remotes to runs and keeps the live runs. */
export class Engine {
  readonly #workflows = new Map<string, TaskSet>();
  readonly #runs = new Map<string, Run>();
  readonly #loading = new Map<string, Promise<Run>>();
  readonly #options: EngineOptions;
  readonly #now: () => number;
  #closing = false;

  constructor(options: EngineOptions) {
    for (const tasks of options.workflows) {
      if (tasks.side !== "server") {
        throw new WorkflowError(
          ErrorCode.InvalidImplementation,
          `Cannot serve workflow "${tasks.workflow.name}": pass its serverTasks(), not its remoteTasks()`,
        );
      }
      if (this.#workflows.has(tasks.workflow.name)) {
        throw new TypeError(`Cannot serve workflow "${tasks.workflow.name}" twice`);
      }
      this.#workflows.set(tasks.workflow.name, tasks);
    }
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#leaseTime = options.leaseTime ?? 30_000;
    this.holder = options.holder ?? crypto.randomUUID();
    // Runs with work in flight but no writes for a while keep their leases.
    this.#renewal = setInterval(() => {
      for (const run of this.#runs.values()) {
        if (run.busy || run.attached) run.renewLease().catch(() => {});
      }
    }, this.#leaseTime / 3);
    Deno.unrefTimer(this.#renewal);
  }

  readonly #leaseTime: number;
  readonly #renewal: ReturnType<typeof setInterval>;
  /** This server, as run leases name it; set before the first run is loaded. */
  holder: string;

  /** The live runs, by key. */
  get runs(): ReadonlyMap<string, Run> {
    return this.#runs;
  }

  /**
   * Handles a remote's hello: checks its definition against ours, loads or creates the run,
   * and attaches the remote.
   *
   * @throws {WorkflowError} `UnknownWorkflow`, `DefinitionMismatch`, `RunBusy` or
   * `ShuttingDown`; the call should end with that error's status.
   */
  async hello(connection: Connection, hello: Hello, principal?: string): Promise<Run> {
    if (this.#closing) {
      throw new WorkflowError(
        ErrorCode.ShuttingDown,
        "The server is shutting down; try again later",
        {
          key: hello.workflowKey,
        },
      );
    }
    const tasks = this.#workflows.get(hello.definitionName);
    const key = hello.workflowKey;
    if (!tasks) {
      const known = [...this.#workflows.keys()].map((n) => `"${n}"`).join(", ") || "none";
      throw new WorkflowError(
        ErrorCode.UnknownWorkflow,
        `Workflow "${hello.definitionName}" (run "${key}") is not served here; this server serves ${known}`,
        { key },
      );
    }
    const { workflow } = tasks;
    if (hello.fingerprint !== workflow.fingerprint) {
      const difference = firstDifference(workflow, {
        name: hello.definitionName,
        version: hello.definitionVersion,
        tasks: hello.tasks,
      }) ??
        "the task lists agree, so the live message declarations (topics, senders or replies) differ";
      throw new WorkflowError(
        ErrorCode.DefinitionMismatch,
        `The remote's definition of workflow "${workflow.name}" differs from the server's (version ${workflow.version}) for run "${key}": ${difference}. Run the same definition on both sides`,
        { key },
      );
    }
    const run = await this.#run(key, tasks, { principal });
    await run.attach(connection);
    if (run.record.status !== "running") {
      // A remote fetched a finished run's result: the run goes back to living in the store.
      run.settled().then(() => {
        if (this.#runs.get(key) === run && !run.attached) this.#runs.delete(key);
      });
    }
    return run;
  }

  /** `owner`: the caller of a hello, checked against the run's principal; none for the server. */
  #run(key: string, tasks: TaskSet, owner?: Owner): Promise<Run> {
    const live = this.#runs.get(key);
    if (live) return Promise.resolve(this.#check(live, tasks, owner));
    let loading = this.#loading.get(key);
    if (!loading) {
      loading = this.#load(key, tasks, owner).finally(() => this.#loading.delete(key));
      this.#loading.set(key, loading);
    }
    return loading.then((run) => this.#check(run, tasks, owner));
  }

  #check(run: Run, tasks: TaskSet, owner?: Owner): Run {
    // --- Run ownership (issue 6): a run answers only the principal that started it, before
    // anything about the run (its definition, whether it is busy) is revealed. ---
    if (owner && run.record.principal !== owner.principal) {
      throw notAccessible(run.key, owner.principal);
    }
    // --- end of run ownership ---
    const { definition } = run.record;
    if (definition.fingerprint !== tasks.workflow.fingerprint) {
      // This server can never serve it: it lives on in the store, untouched.
      if (this.#runs.get(run.key) === run && !run.attached) this.#runs.delete(run.key);
      const difference = firstDifference(tasks.workflow, {
        name: definition.name,
        version: definition.version,
        tasks: run.record.tasks,
      }) ?? "the task lists agree, so the live message declarations differ";
      throw new WorkflowError(
        ErrorCode.DefinitionMismatch,
        `Run "${run.key}" was started under another definition of workflow "${definition.name}" (stored version ${definition.version}, this server's version ${tasks.workflow.version}): in the stored run, ${difference}. It cannot continue under another definition; finish it with the old definition, or use a new workflow key`,
        { key: run.key },
      );
    }
    return run;
  }

  async #load(key: string, tasks: TaskSet, owner?: Owner): Promise<Run> {
    let record = await this.#options.store.load(key);
    const isNew = !record;
    if (record) {
      if (
        record.definition.fingerprint === tasks.workflow.fingerprint &&
        record.status === "running"
      ) {
        await this.#takeLease(record);
      }
    } else {
      // --- Run ownership (issue 6): the run belongs to the principal that starts it. ---
      this.#options.admit?.(key, owner?.principal);
      record = this.#newRecord(key, tasks);
      record.lease = { holder: this.holder, until: this.#now() + this.#leaseTime };
      if (owner?.principal !== undefined) record.principal = owner.principal;
      // --- end of run ownership ---
    }
    const run = new Run(record, this.#environment(tasks));
    if (isNew) {
      await this.#options.store.save(record);
      this.#publish({
        type: "run.started",
        definition: tasks.workflow.name,
        key,
        at: this.#now(),
      });
    }
    this.#runs.set(key, run);
    return run;
  }

  /**
   * Cancels a run, live or only in the store.
   *
   * @returns `false` when there is no such run or it had already ended.
   */
  async cancel(key: string, reason: string): Promise<boolean> {
    const live = this.#runs.get(key) ?? await this.#loading.get(key)?.catch(() => undefined);
    if (live) return live.cancel(reason);
    const record = await this.#options.store.load(key);
    if (!record || record.status !== "running") return false;
    const tasks = this.#workflows.get(record.definition.name);
    if (tasks && tasks.workflow.fingerprint === record.definition.fingerprint) {
      return (await this.#run(key, tasks)).cancel(reason);
    }
    // A run of a definition this server does not serve: record the cancellation directly.
    markCancelled(record, `Run "${key}" was cancelled: ${reason}`, this.#now());
    record.version++;
    record.updatedAt = this.#now();
    await this.#options.store.save(record);
    this.#publish({ type: "run.cancelled", reason, key, at: this.#now() });
    return true;
  }

  /**
   * Loads every unfinished run of a served definition from the store and continues it:
   * server tasks run at once, remote tasks wait for their remote to come back. Runs of a
   * definition this server does not serve, or of another version of it, are left untouched.
   *
   * @returns The keys of the runs resumed.
   */
  async resumeUnfinished(): Promise<string[]> {
    const resumed: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.#options.store.list({ status: "running", after, limit: 500 });
      for (const summary of page) {
        const tasks = this.#workflows.get(summary.definition);
        if (!tasks || this.#runs.has(summary.key)) continue;
        const run = await this.#run(summary.key, tasks).catch(() => undefined);
        if (!run) continue;
        run.resume();
        resumed.push(run.key);
      }
      if (page.length < 500) return resumed;
      after = page[page.length - 1].key;
    }
  }

  #newRecord(key: string, tasks: TaskSet): RunRecord {
    const now = this.#now();
    const { workflow } = tasks;
    return {
      schema: RECORD_SCHEMA,
      key,
      definition: {
        name: workflow.name,
        version: workflow.version,
        fingerprint: workflow.fingerprint,
      },
      status: "running",
      tasks: workflow.tasks.map((task) => ({
        name: task.name,
        side: task.side,
        status: "pending",
        attempts: 0,
      })),
      outputs: {},
      local: {},
      createdAt: now,
      updatedAt: now,
      version: 1,
    };
  }

  #environment(tasks: TaskSet): RunEnvironment {
    // deno-lint-ignore no-this-alias
    const engine = this;
    return {
      store: this.#options.store,
      tasks,
      now: this.#now,
      publish: (event) => this.#publish(event),
      get holder() {
        return engine.holder;
      },
      leaseTime: this.#leaseTime,
      finished: (run) => {
        // A finished run lives on in the store only, so that a long-lived server does not
        // keep every run it ever ran in memory; a late remote reloads it from there.
        run.settled().then(() => {
          if (this.#runs.get(run.key) === run) this.#runs.delete(run.key);
        });
        this.#options.onFinished?.(run);
      },
      broken: (run, error) => {
        // The in-memory record may now be ahead of the store: forget it; the next hello
        // reloads the run from the store. (Only this object: a newer one may hold the key.)
        if (this.#runs.get(run.key) === run) this.#runs.delete(run.key);
        run.close(
          new WorkflowError(
            ErrorCode.Internal,
            `Run "${run.key}" hit an internal error and was unloaded: ${
              (error as Error)?.message ?? error
            }. Reconnect to resume it`,
            { key: run.key, cause: error },
          ),
        );
      },
    };
  }

  #publish(event: WorkflowEvent): void {
    this.#options.events.publish(event);
  }

  /**
   * Stops accepting remotes, lets in-flight attempts finish until `deadline` (ms since the
   * epoch), then ends every call.
   */
  /**
   * Takes a stored run for this server: refused while another server's lease lasts; the
   * write of the lease is a compare-and-set, so of two servers loading the run at once one
   * wins and the other is refused, before either does any work.
   */
  async #takeLease(record: RunRecord): Promise<void> {
    const now = this.#now();
    const { holder } = this;
    const held = (lease: { holder: string; until: number }) =>
      new WorkflowError(
        ErrorCode.RunBusy,
        `Run "${record.key}" is being served by another server (${lease.holder}) until ${
          new Date(lease.until).toISOString()
        }; connect to that server, or again once its lease has lapsed`,
        { key: record.key },
      );
    if (record.lease && record.lease.holder !== holder && record.lease.until > now) {
      throw held(record.lease);
    }
    interrupted(record);
    record.lease = { holder, until: now + this.#leaseTime };
    record.version++;
    record.updatedAt = now;
    try {
      await this.#options.store.save(record);
    } catch (error) {
      if ((error as WorkflowError).code !== ErrorCode.Conflict) throw error;
      const current = await this.#options.store.load(record.key);
      throw held(current?.lease ?? { holder: "another server", until: now + this.#leaseTime });
    }
  }

  async shutdown(deadline: number): Promise<void> {
    clearInterval(this.#renewal);
    this.#closing = true;
    const runs = [...this.#runs.values()];
    const drained = Promise.all(runs.map((run) => run.drain()));
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      drained,
      new Promise((resolve) => timer = setTimeout(resolve, Math.max(0, deadline - this.#now()))),
    ]);
    clearTimeout(timer);
    const error = new WorkflowError(
      ErrorCode.ShuttingDown,
      "The server is shutting down; the run resumes when it is back",
    );
    for (const run of runs) run.close(error);
    await Promise.all(runs.map((run) => run.settled()));
    // Another server may take these runs at once (no waiting for the leases to lapse).
    await Promise.all(runs.map((run) => run.releaseLease().catch(() => {})));
  }
}

/**
 * Marks the attempts a previous server process left in flight as interrupted: they were
 * running when it stopped, so each is retried as a new attempt. Its number is already
 * counted in `attempts`, so the next attempt gets a fresh number and a late result of the
 * old one is ignored.
 */
function interrupted(record: RunRecord): void {
  if (record.status !== "running") return;
  for (const task of record.tasks) {
    // A retry waiting for its time keeps it (the new server waits out the backoff).
    if (task.status === "retrying" && task.retryAt !== undefined) continue;
    if (task.status === "running" || task.status === "retrying") {
      if (task.status === "running") {
        task.error = {
          code: ErrorCode.Unavailable,
          message:
            `Attempt ${task.attempts} was interrupted: the server running it stopped (or another server took the run over)`,
        };
      }
      task.status = "pending";
      task.progress = undefined;
    }
  }
}
