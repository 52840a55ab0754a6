/**
 * The remote of the secret workflow.
 *
 *     deno run -A examples/secret/client.ts [--host 127.0.0.1] [--port 50051] [--key dh-secret/alice]
 *       [--local .workflow/remote.db] [--dry-run]
 *
 * The remote keeps its secret exponent in its own SQLite file (`--local`), never on the
 * server: a client killed mid-run and started again with the same key continues the run.
 *
 * Each remote task runs in its own isolate with the permissions it declares (none, here);
 * `--dry-run` prints what each task may do, and exits without connecting. The least
 * privileges this client needs are in the README ("Permissions").
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  connect,
  formatReview,
  reviewPermissions,
  SQLiteLocalStore,
  WorkflowError,
} from "../../mod.ts";
import { secretRemoteTasks } from "./remote_tasks.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "50051" },
    key: { type: "string", default: "dh-secret/alice" },
    local: { type: "string", default: ".workflow/remote.db" },
    "dry-run": { type: "boolean", default: false },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(
    "usage: client.ts [--host 127.0.0.1] [--port 50051] [--key dh-secret/alice] [--local .workflow/remote.db] [--dry-run]",
  );
  Deno.exit(0);
}
// The isolates resolve imports with the project's deno.json; naming it spares the client
// reading the folders above the task module to find it.
const sandbox = { config: new URL("../../deno.json", import.meta.url) };
if (values["dry-run"]) {
  const review = await reviewPermissions(secretRemoteTasks, { sandbox });
  console.log(formatReview(review));
  Deno.exit(review.problems.length === 0 ? 0 : 1);
}

try {
  const outputs = await connect({
    address: `${values.host}:${values.port}`,
    key: values.key,
    tasks: secretRemoteTasks,
    local: new SQLiteLocalStore({ path: values.local }),
    sandbox,
  });
  const { agreed, fingerprint } = outputs["remote-verify"];
  console.log(
    agreed ? `client: secret agreed (fingerprint ${fingerprint})` : "client: secret NOT agreed",
  );
  Deno.exit(agreed ? 0 : 1);
} catch (error) {
  console.error(
    `client: ${error instanceof WorkflowError ? `${error.code}: ` : ""}${(error as Error).message}`,
  );
  Deno.exit(1);
}
