/**
 * `deno task demo`: starts the secret workflow's server and client as two real processes,
 * waits for the server to listen (no fixed sleep), and exits 0 when the run is done.
 *
 * @module
 */
const here = new URL(".", import.meta.url);
const deno = Deno.execPath();
const flags = [
  "run",
  "--allow-net=127.0.0.1",
  "--allow-env",
  "--allow-read",
  "--allow-write",
  "--allow-sys",
  `--allow-run=${deno}`, // the client runs each remote task in a deno subprocess
];

const server = new Deno.Command(deno, {
  args: [...flags, new URL("server.ts", here).pathname, "--port", "0", "--solo"],
  stdout: "piped",
  stderr: "inherit",
}).spawn();

// Echo the server's output, and learn its port from its "listening on" line.
const port = await new Promise<string>((resolve, reject) => {
  const timer = setTimeout(
    () => reject(new Error("demo: the server did not start within 30 s")),
    30_000,
  );
  (async () => {
    const lines = server.stdout.pipeThrough(new TextDecoderStream());
    let buffer = "";
    let found = false;
    for await (const chunk of lines) {
      buffer += chunk;
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        console.log(`[server] ${line}`);
        const match = !found && line.match(/listening on \S+:(\d+)/);
        if (match) {
          found = true;
          clearTimeout(timer);
          resolve(match[1]);
        }
      }
    }
    if (!found) reject(new Error("demo: the server exited before it listened"));
  })();
});

const client = new Deno.Command(deno, {
  args: [
    ...flags,
    new URL("client.ts", here).pathname,
    "--port",
    port,
    "--key",
    `dh-secret/demo-${Date.now()}`,
  ],
  stdout: "piped",
  stderr: "inherit",
}).spawn();
for await (const chunk of client.stdout.pipeThrough(new TextDecoderStream())) {
  for (const line of chunk.split("\n")) if (line) console.log(`[client] ${line}`);
}
const [clientStatus, serverStatus] = await Promise.all([client.status, server.status]);
if (!clientStatus.success || !serverStatus.success) {
  console.error(`demo: client exited ${clientStatus.code}, server exited ${serverStatus.code}`);
  Deno.exit(1);
}
console.log("demo: done");
