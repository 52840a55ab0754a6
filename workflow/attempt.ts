/**
 * Runs one attempt of a task through its hooks, on either side: `validate`, then `run`
 * under a timeout, then `rollback` when `run` failed.
 *
 * @module
 */
import type { TaskDeclaration } from "./definition.ts";
import { ErrorCode, WorkflowError } from "./errors.ts";
import type { Value } from "./payload.ts";
import type { AnyTaskHooks, TaskContext } from "./task.ts";

/** How an attempt ended. */
export type AttemptOutcome =
  | { ok: true; output: unknown; skipped: boolean }
  | { ok: false; error: unknown };

/**
 * Runs one attempt. Never throws: failures come back as `{ ok: false }`.
 *
 * @param hooks The task's implementation.
 * @param task The task's declaration (for its timeout).
 * @param input The outputs of the earlier tasks.
 * @param context The context the hooks receive; its signal is aborted on timeout.
 * @param abort Aborts `context.signal`.
 */
export async function runAttempt(
  hooks: AnyTaskHooks,
  task: TaskDeclaration,
  input: Record<string, Value>,
  context: TaskContext,
  abort: AbortController,
): Promise<AttemptOutcome> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = task.timeout > 0
    ? new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const error = new WorkflowError(
          ErrorCode.TaskTimeout,
          `Task "${task.name}" of run "${context.key}" timed out after ${task.timeout} ms (attempt ${context.attempt})`,
          { key: context.key, task: task.name, attempt: context.attempt },
        );
        abort.abort(error);
        reject(error);
      }, task.timeout);
    })
    : undefined;
  const aborted = new Promise<never>((_, reject) => {
    const onAbort = () => reject(context.signal.reason);
    if (context.signal.aborted) onAbort();
    else context.signal.addEventListener("abort", onAbort, { once: true });
  });
  aborted.catch(() => {});
  const race = <T>(work: Promise<T>): Promise<T> =>
    Promise.race(deadline ? [work, deadline, aborted] : [work, aborted]);
  try {
    if (hooks.validate) {
      const done = await race(Promise.resolve().then(() => hooks.validate!(input, context)));
      if (done) return { ok: true, output: done.output, skipped: true };
    }
    const output = await race(Promise.resolve().then(() => hooks.run(input, context)));
    return { ok: true, output, skipped: false };
  } catch (error) {
    if (hooks.rollback) {
      try {
        await hooks.rollback(input, context, error);
      } catch (rollbackError) {
        return {
          ok: false,
          error: new WorkflowError(
            ErrorCode.TaskFailed,
            `Task "${task.name}" failed (${errorText(error)}) and its rollback failed too (${
              errorText(rollbackError)
            })`,
            { key: context.key, task: task.name, attempt: context.attempt, cause: error },
          ),
        };
      }
    }
    return { ok: false, error };
  } finally {
    clearTimeout(timer);
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The delay before attempt `next` (2 or more): exponential, capped, with full jitter. */
export function retryDelay(
  task: TaskDeclaration,
  next: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(task.retry.maxDelay, task.retry.initialDelay * 2 ** (next - 2));
  // Half fixed, half random: spreads retries out without ever retrying at once.
  return Math.round(ceiling / 2 + random() * ceiling / 2);
}
