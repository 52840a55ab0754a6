/**
 * Small measuring helpers shared by the benchmark sections.
 *
 * @module
 */

/** A distribution of durations, in milliseconds. */
export interface Summary {
  /** How many samples. */
  n: number;
  /** The median. */
  p50: number;
  /** The 99th percentile (nearest rank). */
  p99: number;
  /** The mean. */
  mean: number;
}

/** The nearest-rank percentile `p` (0 to 100) of `sorted`, which must be sorted ascending. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Summarises samples (milliseconds). */
export function summarize(samples: readonly number[]): Summary {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length);
  return { n: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), mean };
}

/** Rounds for display and JSON: 3 significant decimals below 10, fewer above. */
export function round(value: number): number {
  if (!Number.isFinite(value)) return value;
  const abs = Math.abs(value);
  const digits = abs >= 1000 ? 0 : abs >= 100 ? 1 : abs >= 10 ? 2 : 3;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Formats a number for the table, with thousands separators. */
export function fmt(value: number | undefined | null, unit = ""): string {
  if (value === undefined || value === null || Number.isNaN(value)) return "n/a";
  const r = round(value);
  const text = Math.abs(r) >= 1000 ? Math.round(r).toLocaleString("en-US") : String(r);
  return unit ? `${text} ${unit}` : text;
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A promise with its resolve and reject exposed. */
export function deferred<T = void>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Resident set size of a process in KiB, from `/proc/<pid>/status` (Linux). */
export function rssKb(pid: number | "self" = "self"): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const match = status.match(/^VmRSS:\s+(\d+)\s+kB/m);
  if (!match) throw new Error(`Cannot read the RSS of process ${pid}`);
  return Number(match[1]);
}

/** A free TCP port on 127.0.0.1 (bound and released at once). */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}
