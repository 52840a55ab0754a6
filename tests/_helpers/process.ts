/**
 * Child processes for tests: spawn `deno run`, read its output line by line, wait for a line,
 * kill it.
 *
 * @module
 */

export interface Child extends AsyncDisposable {
  readonly pid: number;
  /** Every line printed so far (stdout and stderr). */
  readonly lines: string[];
  /** Resolves with the first line (past or future) that matches, or rejects after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  kill(signal?: Deno.Signal): void;
  readonly status: Promise<Deno.CommandStatus>;
}

export function spawnDeno(
  args: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Child {
  const process = new Deno.Command(Deno.execPath(), {
    args: ["run", ...args],
    cwd: options.cwd,
    env: { NO_COLOR: "1", ...options.env },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const listeners = new Set<() => void>();
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let buffer = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        lines.push(buffer.slice(0, newline));
        buffer = buffer.slice(newline + 1);
        for (const listener of listeners) listener();
      }
    }
    if (buffer) lines.push(buffer);
    for (const listener of listeners) listener();
  };
  const pumped = Promise.all([pump(process.stdout), pump(process.stderr)]);
  const status = pumped.then(() => process.status);
  let exited = false;
  status.then(() => {
    exited = true;
    for (const listener of listeners) listener();
  });
  return {
    pid: process.pid,
    lines,
    status,
    waitFor(pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          for (const line of lines) {
            const match = line.match(pattern);
            if (match) {
              done();
              resolve(match);
              return;
            }
          }
          if (exited) {
            done();
            reject(
              new Error(`process exited without printing ${pattern}; output:\n${lines.join("\n")}`),
            );
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(
            new Error(
              `no line matching ${pattern} within ${timeoutMs} ms; output:\n${lines.join("\n")}`,
            ),
          );
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    kill(signal: Deno.Signal = "SIGKILL") {
      try {
        process.kill(signal);
      } catch { /* already gone */ }
    },
    async [Symbol.asyncDispose]() {
      if (!exited) this.kill();
      await status;
    },
  };
}
