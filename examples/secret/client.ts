/**
 * The remote of the secret workflow.
 *
 *     deno run -A examples/secret/client.ts [--host 127.0.0.1] [--port 50051] [--key dh-secret/alice]
 *       [--local .workflow/remote.db]
 *
 * The remote keeps its secret exponent in its own SQLite file (`--local`), never on the
 * server: a client killed mid-run and started again with the same key continues the run.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { connect, SQLiteLocalStore, WorkflowError } from "../../mod.ts";
import { secretRemoteTasks } from "./remote_tasks.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "50051" },
    key: { type: "string", default: "dh-secret/alice" },
    local: { type: "string", default: ".workflow/remote.db" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (values.help) {
  console.log(
    "usage: client.ts [--host 127.0.0.1] [--port 50051] [--key dh-secret/alice] [--local .workflow/remote.db]",
  );
  Deno.exit(0);
}

try {
  const outputs = await connect({
    address: `${values.host}:${values.port}`,
    key: values.key,
    tasks: secretRemoteTasks,
    local: new SQLiteLocalStore({ path: values.local }),
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
