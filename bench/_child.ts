/**
 * A child Deno process driven by lines: the parent writes commands on its standard input and
 * reads its answers, one per line, from its standard output.
 *
 * @module
 */

/** A running child that answers line commands. */
export class LineChild implements AsyncDisposable {
  readonly #process: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;
  readonly #encoder = new TextEncoder();

  /** Starts `deno run -A [flags] <script> [args]`. */
  constructor(script: URL, args: string[], flags: string[] = []) {
    this.#process = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", ...flags, script.pathname, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#writer = this.#process.stdin.getWriter();
    this.#lines = splitLines(this.#process.stdout)[Symbol.asyncIterator]();
  }

  /** Resolves when the child exits. */
  get exited(): Promise<Deno.CommandStatus> {
    return this.#process.status;
  }

  /** The child's process id. */
  get pid(): number {
    return this.#process.pid;
  }

  /** The next line the child prints. */
  async read(): Promise<string> {
    const { value, done } = await this.#lines.next();
    if (done) throw new Error("the child process ended before answering");
    return value;
  }

  /** Sends one command line and returns the child's one-line answer. */
  async ask(command: string): Promise<string> {
    await this.#writer.write(this.#encoder.encode(`${command}\n`));
    return await this.read();
  }

  /** Tells the child to quit, and waits for it; kills it if it has not quit in 10 s. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.#writer.write(this.#encoder.encode("quit\n"));
      await this.#writer.close();
    } catch { /* already gone */ }
    const timer = setTimeout(() => {
      try {
        this.#process.kill("SIGKILL");
      } catch { /* gone */ }
    }, 10_000);
    await this.#process.status;
    clearTimeout(timer);
    // Drain what is left of its output so the stream is closed.
    for (;;) {
      const { done } = await this.#lines.next();
      if (done) break;
    }
  }
}

async function* splitLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffer = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffer += chunk;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, newline);
      buffer = buffer.slice(newline + 1);
    }
  }
  if (buffer) yield buffer;
}

/** Reads command lines from this process's standard input (for a child's side). */
export function commands(): AsyncGenerator<string> {
  return splitLines(Deno.stdin.readable);
}
