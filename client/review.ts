/**
 * The permission review: what each remote task of a workflow may touch, checked against
 * the ceiling the remote's operator allows, before anything runs.
 *
 * @module
 */
import { isAbsolute, resolve } from "node:path";
import type { AnyWorkflow } from "../workflow/definition.ts";
import {
  formatPermissions,
  permissionExcess,
  type Permissions,
  type ResolvedPermissions,
  resolvePermissions,
} from "../workflow/permissions.ts";
import type { TaskSet } from "../workflow/task.ts";
import { inspectGraph, type IsolateProgram, isolateProgram, type ModuleGraph } from "./_graph.ts";

export type { ModuleGraph };

/**
 * How a client runs remote tasks: `"process"` runs each attempt in its own `deno run`
 * subprocess granted only the task's permissions; `"none"` runs it in the client's own
 * process, with all of the client's permissions (for tests and fully trusted code).
 */
export type Isolation = "process" | "none";

/** Limits of the task isolates. */
export interface SandboxOptions {
  /**
   * The memory an isolate may use, in MiB: its JavaScript heap and its `ArrayBuffer`s
   * together. An isolate that needs more is stopped and its attempt fails with
   * `ResourceExhausted`.
   *
   * @default {512}
   */
  memoryLimit?: number;
  /**
   * How long a cancelled or timed-out isolate has to finish (its `rollback` hook runs)
   * before it is killed, in ms.
   *
   * @default {1000}
   */
  killGrace?: number;
  /**
   * The `deno.json` the isolate resolves imports with (a path relative to `cwd`, or a
   * `file:` URL), or `false` for none. Giving it spares the client reading the folders
   * above the task module to find it.
   *
   * @default the nearest `deno.json` or `deno.jsonc` above the task module
   */
  config?: string | URL | false;
}

/** Options of {@linkcode reviewPermissions}. */
export interface ReviewOptions {
  /** The ceiling: the most any task may be granted. Nothing by default. */
  allow?: Permissions;
  /**
   * The working folder: relative paths resolve against it, and isolates run in it.
   *
   * @default {Deno.cwd()}
   */
  cwd?: string;
  /**
   * How the tasks will run.
   *
   * @default {"process"}
   */
  isolation?: Isolation;
  /** Limits of the task isolates. */
  sandbox?: SandboxOptions;
}

/** What one remote task may do. */
export interface TaskReview {
  /** The task's name. */
  readonly task: string;
  /** What the task does, when the definition says. */
  readonly description?: string;
  /** The attempt timeout in ms; 0 means none. */
  readonly timeout: number;
  /** The permissions the task declares, resolved: exactly what its isolate is granted. */
  readonly permissions: ResolvedPermissions;
  /** What the task asks for beyond the ceiling, for example `read access to "/etc"`. */
  readonly excess: readonly string[];
}

/** The review of a workflow's remote tasks, made by {@linkcode reviewPermissions}. */
export interface PermissionReview {
  /** The definition's name. */
  readonly workflow: string;
  /** The definition's version. */
  readonly version: number;
  /** How the tasks run. */
  readonly isolation: Isolation;
  /** The working folder, absolute. */
  readonly cwd: string;
  /** The memory limit of an isolate, in MiB. */
  readonly memoryLimit: number;
  /** The ceiling, resolved. */
  readonly ceiling: ResolvedPermissions;
  /** The remote tasks, in order. */
  readonly tasks: readonly TaskReview[];
  /** The task module's URL, when the task set has one. */
  readonly module?: string;
  /** What the isolates' module graph loads (with process isolation). */
  readonly graph?: ModuleGraph;
  /** How many live-message handlers run in the client process (they are not isolated). */
  readonly handlers: number;
  /**
   * Why the client refuses the workflow: every access beyond the ceiling, and every file
   * the module graph loads from outside its project folder. Empty when it may run.
   */
  readonly problems: readonly string[];
}

/** @internal What `prepareIsolation` needs besides the review. */
export interface ReviewDetails {
  review: PermissionReview;
  program?: IsolateProgram;
}

/**
 * Reviews the remote tasks of a workflow: the permissions each gets, what the ceiling
 * refuses, and (with process isolation) what the tasks' module graph loads. Nothing runs;
 * the module graph is listed with `deno info`.
 *
 * @example Print the table an operator reviews
 * ```ts ignore
 * import { formatReview, reviewPermissions } from "@tradeline/workflow/client";
 * import { tasks } from "./remote_tasks.ts";
 *
 * console.log(formatReview(await reviewPermissions(tasks, { allow: { read: ["./logs"] } })));
 * ```
 *
 * @param tasks The remote tasks, from `remoteTasks()`.
 * @param options The ceiling, the working folder and the isolation.
 * @returns The review; `problems` is empty when the client would run the workflow.
 */
export async function reviewPermissions(
  tasks: TaskSet<AnyWorkflow, "remote">,
  options: ReviewOptions = {},
): Promise<PermissionReview> {
  return (await reviewDetails(tasks, options)).review;
}

/** @internal The review, and the isolate program when tasks run isolated. */
export async function reviewDetails(
  tasks: TaskSet<AnyWorkflow, "remote">,
  options: ReviewOptions,
): Promise<ReviewDetails> {
  const workflow = tasks.workflow;
  const isolation = options.isolation ?? "process";
  if (isolation !== "process" && isolation !== "none") {
    throw new TypeError(
      `Cannot use isolation ${JSON.stringify(isolation)}: expected "process" or "none"`,
    );
  }
  const cwd = workingFolder(options.cwd);
  const memoryLimit = options.sandbox?.memoryLimit ?? 512;
  if (!Number.isSafeInteger(memoryLimit) || memoryLimit < 16) {
    throw new RangeError(`Cannot use sandbox.memoryLimit ${memoryLimit}: expected MiB >= 16`);
  }
  const ceiling = resolvePermissions(options.allow, cwd, "the ceiling (allow)");
  const problems: string[] = [];
  const reviews: TaskReview[] = [];
  for (const task of workflow.tasks) {
    if (task.side !== "remote") continue;
    const permissions = resolvePermissions(task.permissions, cwd, `task "${task.name}"`);
    const excess = permissionExcess(permissions, ceiling);
    for (const access of excess) problems.push(`task "${task.name}": ${access}`);
    reviews.push({
      task: task.name,
      ...(task.description ? { description: task.description } : {}),
      timeout: task.timeout,
      permissions,
      excess,
    });
  }
  let program: IsolateProgram | undefined;
  let graph: ModuleGraph | undefined;
  if (isolation === "process" && tasks.module) {
    program = isolateProgram(tasks.module, options.sandbox?.config, cwd);
    graph = await inspectGraph(program, cwd);
    for (const file of graph.outside) {
      problems.push(
        `the task module loads ${file}, outside its project folder (${program.roots.join(", ")})`,
      );
    }
  }
  return {
    review: {
      workflow: workflow.name,
      version: workflow.version,
      isolation,
      cwd,
      memoryLimit,
      ceiling,
      tasks: reviews,
      ...(tasks.module ? { module: tasks.module } : {}),
      ...(graph ? { graph } : {}),
      handlers: Object.keys(tasks.handlers ?? {}).length,
      problems,
    },
    ...(program ? { program } : {}),
  };
}

function workingFolder(cwd: string | undefined): string {
  if (cwd === undefined) return Deno.cwd();
  if (typeof cwd !== "string" || cwd === "") {
    throw new TypeError("Cannot use cwd: expected a folder path");
  }
  return isAbsolute(cwd) ? resolve(cwd) : resolve(Deno.cwd(), cwd);
}

/**
 * Renders a review as the table an operator reads before running a workflow: one row per
 * remote task with the permissions its isolate gets, then what the module graph loads,
 * then why the client refuses, if it does.
 *
 * @param review A review from {@linkcode reviewPermissions}.
 * @returns Plain text, lines separated by `\n`.
 */
export function formatReview(review: PermissionReview): string {
  const lines = [
    `Workflow "${review.workflow}" v${review.version}: what each remote task may do on this machine`,
    `  isolation  ${
      review.isolation === "process"
        ? `a deno subprocess per attempt, ${review.memoryLimit} MiB memory limit`
        : "none: tasks run in the client process with all of its permissions"
    }`,
    `  folder     ${review.cwd} (relative paths resolve here)`,
    `  ceiling    ${formatPermissions(review.ceiling)}`,
  ];
  if (review.module) lines.push(`  module     ${review.module}`);
  else if (review.isolation === "process") {
    lines.push(
      "  module     none: remoteTasks() was given no module URL, so these tasks cannot run",
    );
  }
  const graph = review.graph;
  if (graph) {
    lines.push(
      `  loads      ${graph.files.length} local files${
        graph.hosts.length ? `; modules from ${graph.hosts.join(", ")}` : ""
      }${graph.npm.length ? `; npm ${graph.npm.join(", ")}` : ""}`,
    );
  }
  if (review.handlers > 0) {
    lines.push(
      `  handlers   ${review.handlers} live-message handler(s) run in the client process, not isolated`,
    );
  }
  const rows = review.tasks.map((task) => [
    task.task,
    task.timeout > 0 ? `${task.timeout} ms` : "none",
    formatPermissions(task.permissions),
    task.excess.length === 0 ? "within" : `EXCEEDS: ${task.excess.join("; ")}`,
  ]);
  const header = ["task", "timeout", "permissions", "ceiling"];
  const widths = header.map((title, i) =>
    Math.max(title.length, ...rows.map((row) => row[i].length))
  );
  const line = (cells: string[]) =>
    `  ${cells.map((cell, i) => i < cells.length - 1 ? cell.padEnd(widths[i]) : cell).join("  ")}`;
  lines.push("", line(header), ...rows.map(line));
  if (review.problems.length > 0) {
    lines.push("", `Refused (${review.problems.length}):`);
    for (const problem of review.problems) lines.push(`  - ${problem}`);
  }
  return lines.join("\n");
}
