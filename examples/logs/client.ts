/**
 * The remote of the logs workflow: summarises the `*.log` files of `<dir>/logs`.
 *
 *     deno run --allow-net=127.0.0.1:50052 --allow-env=GRPC_*,grpc_proxy,https_proxy,http_proxy \
 *       --allow-run="$(deno eval 'console.log(Deno.execPath())')" \
 *       examples/logs/client.ts [--port 50052] [--dir examples/logs] [--dry-run]
 *
 * The task runs in an isolate that may read `<dir>/logs` and nothing else; the client's
 * ceiling (`allow`) is exactly that, so a version of the workflow that asked for more would
 * be refused before it ran.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import {
  connect,
  formatReview,
  MemoryLocalStore,
  reviewPermissions,
  WorkflowError,
} from "../../mod.ts";
import { logsRemoteTasks } from "./remote_tasks.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "50052" },
    key: { type: "string", default: `logs-summary/${Date.now()}` },
    dir: { type: "string", default: fileURLToPath(new URL(".", import.meta.url)) },
    "dry-run": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(
    "usage: client.ts [--host 127.0.0.1] [--port 50052] [--key K] [--dir examples/logs] [--dry-run]",
  );
  Deno.exit(0);
}

const options = {
  cwd: values.dir,
  allow: { read: ["./logs"] },
  sandbox: { config: new URL("../../deno.json", import.meta.url) },
};
if (values["dry-run"]) {
  const review = await reviewPermissions(logsRemoteTasks, options);
  console.log(formatReview(review));
  Deno.exit(review.problems.length === 0 ? 0 : 1);
}

try {
  const outputs = await connect({
    address: `${values.host}:${values.port}`,
    key: values.key,
    tasks: logsRemoteTasks,
    local: new MemoryLocalStore(),
    ...options,
  });
  console.log(outputs.report.text);
} catch (error) {
  console.error(
    `client: ${error instanceof WorkflowError ? `${error.code}: ` : ""}${(error as Error).message}`,
  );
  Deno.exit(1);
}
