/**
 * Waiting on a server's events in tests, with a bounded timeout.
 *
 * @module
 */
import type { WorkflowEvent, WorkflowServer } from "../../mod.ts";

/** Resolves with the first event that matches; subscribes at once; fails after `timeoutMs`. */
export function nextEvent(
  server: WorkflowServer,
  match: (event: WorkflowEvent) => boolean,
  timeoutMs = 15_000,
): Promise<WorkflowEvent> {
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), timeoutMs);
  const events = server.events({ signal: stop.signal });
  return (async () => {
    try {
      for await (const event of events) {
        if (match(event)) return event;
      }
      throw new Error(`no matching event within ${timeoutMs / 1000} s`);
    } finally {
      clearTimeout(timer);
      stop.abort();
    }
  })();
}
