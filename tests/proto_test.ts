/**
 * The wire contract: the generated code matches workflow.proto, frames survive the trip,
 * and malformed frames from a remote are refused as protocol violations.
 */
import assert from "node:assert/strict";
import {
  decodeRemoteFrame,
  decodeServerFrame,
  encodeRemoteFrame,
  encodeServerFrame,
  PROTOCOL_VERSION,
  type RemoteFrame,
  type ServerFrame,
} from "../proto/wire.ts";
import { tradeline } from "../proto/_gen/workflow.js";
import { WorkflowError } from "../mod.ts";

const root = new URL("../", import.meta.url).pathname;
const FINGERPRINT = "0123456789abcdef".repeat(4);
const bytes = (...values: number[]) => new Uint8Array(values);

/** Bytes fields may decode as Buffer views: compare their contents as plain Uint8Arrays. */
function plain<T>(value: T): T {
  if (value instanceof Uint8Array) return new Uint8Array(value) as T;
  if (Array.isArray(value)) return value.map(plain) as T;
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)])) as T;
  }
  return value;
}

function assertViolation(data: Uint8Array, text: RegExp): void {
  assert.throws(() => decodeRemoteFrame(data), (error: unknown) => {
    assert.ok(error instanceof WorkflowError, `not a WorkflowError: ${error}`);
    assert.equal(error.code, "ProtocolViolation");
    assert.match(error.message, text);
    return true;
  });
}

const hello = {
  protocolVersion: PROTOCOL_VERSION,
  workflowKey: "order/42 ✓",
  definitionName: "dh-secret",
  definitionVersion: 3,
  fingerprint: FINGERPRINT,
  tasks: [{ name: "remote-public", side: "remote" }, { name: "server-public", side: "server" }],
} as const;

/** Encodes a RemoteFrame message straight from the generated code, skipping wire.ts. */
function rawRemote(message: tradeline.workflow.v1.RemoteFrame.$Properties): Uint8Array {
  return tradeline.workflow.v1.RemoteFrame.encode(message).finish();
}

Deno.test("proto/_gen matches proto/workflow.proto", async () => {
  const out = await Deno.makeTempDir({ prefix: "proto-stale-" });
  try {
    const { success, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "proto/generate.ts", "--out", `${out}/`],
      cwd: root,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(success, `proto/generate.ts failed: ${new TextDecoder().decode(stderr)}`);
    for (const file of ["workflow.js", "workflow.d.ts"]) {
      const fresh = await Deno.readTextFile(`${out}/${file}`);
      const committed = await Deno.readTextFile(`${root}proto/_gen/${file}`);
      assert.ok(fresh.length > 1000, `${file} is nearly empty`);
      assert.ok(
        fresh === committed,
        `proto/_gen is stale: run \`deno task proto\` (${file} differs)`,
      );
    }
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("encode/decode frames round-trip every field", async (t) => {
  const remote: RemoteFrame[] = [
    { kind: "hello", hello: { ...hello, tasks: hello.tasks.map((task) => ({ ...task })) } },
    { kind: "result", result: { task: "remote-public", attempt: 2, output: bytes(1, 2, 3, 255) } },
    {
      kind: "failure",
      failure: { task: "r.1:x_y-z", attempt: 1, error: { code: "TaskFailed", message: "boom ✗" } },
    },
    { kind: "progress", progress: { task: "t", attempt: 3, fraction: 0.25, note: "a quarter" } },
  ];
  const server: ServerFrame[] = [
    {
      kind: "welcome",
      welcome: {
        nextTask: 2,
        outputs: [{ task: "a", value: bytes(9) }, { task: "b", value: bytes() }],
        tasks: [
          { task: "a", attempt: 1, status: "completed", durationMs: 12.5 },
          {
            task: "b",
            attempt: 2,
            status: "retrying",
            durationMs: 0,
            error: { code: "X", message: "y" },
          },
        ],
      },
    },
    {
      kind: "dispatch",
      dispatch: {
        task: "c",
        attempt: 1,
        outputs: [{ task: "b", value: bytes(7, 8) }],
        timeoutMs: 5000,
        heartbeatMs: 250,
      },
    },
    { kind: "progress", progress: { task: "s", attempt: 1, fraction: 1, note: "" } },
    ...(["pending", "running", "completed", "failed", "skipped", "retrying", "cancelled"] as const)
      .map(
        (status): ServerFrame => ({
          kind: "taskEvent",
          taskEvent: { task: "s", attempt: 1, status, durationMs: 3 },
        }),
      ),
    { kind: "completed", completed: { outputs: [{ task: "a", value: bytes(1) }] } },
    { kind: "failed", failed: { task: "s", error: { code: "RunFailed", message: "it broke" } } },
  ];

  await t.step("frames a remote sends", () => {
    for (const frame of remote) {
      assert.deepEqual(plain(decodeRemoteFrame(encodeRemoteFrame(frame))), frame, frame.kind);
    }
  });
  await t.step("frames a server sends", () => {
    for (const frame of server) {
      assert.deepEqual(plain(decodeServerFrame(encodeServerFrame(frame))), frame, frame.kind);
    }
  });
});

Deno.test("decodeRemoteFrame() refuses malformed frames as ProtocolViolation", async (t) => {
  const helloBytes = encodeRemoteFrame({
    kind: "hello",
    hello: { ...hello, tasks: [...hello.tasks] },
  });

  await t.step("empty bytes carry no frame kind", () => {
    assertViolation(new Uint8Array(), /^Empty frame/);
  });
  await t.step("truncated bytes", () => {
    for (let end = 1; end < helloBytes.length; end++) {
      assertViolation(helloBytes.subarray(0, end), /^Malformed frame/);
    }
  });
  await t.step("a hello with protocol version 2", () => {
    assertViolation(
      rawRemote({ hello: { ...hello, protocolVersion: 2, tasks: [] } }),
      /protocol version 2 is not supported/,
    );
  });
  await t.step("a hello with an empty workflow key", () => {
    assertViolation(rawRemote({ hello: { ...hello, workflowKey: "", tasks: [] } }), /workflow key/);
    assertViolation(
      rawRemote({ hello: { ...hello, workflowKey: "a\nb", tasks: [] } }),
      /workflow key/,
    );
  });
  await t.step("a result with attempt 0", () => {
    assertViolation(
      rawRemote({ result: { task: "t", attempt: 0, output: bytes(1) } }),
      /^result: attempt must be 1 or more, got 0/,
    );
  });
  await t.step("a progress with fraction 1.5", () => {
    for (const fraction of [1.5, -0.1, NaN]) {
      assertViolation(
        rawRemote({ progress: { task: "t", attempt: 1, fraction } }),
        /^progress: fraction must be between 0 and 1/,
      );
    }
  });
  await t.step("a task name with spaces", () => {
    assertViolation(
      rawRemote({ result: { task: "my task", attempt: 1 } }),
      /^result: task name "my task" is not a valid task name/,
    );
    assertViolation(
      rawRemote({ hello: { ...hello, tasks: [{ name: "two words", side: 1 }] } }),
      /^hello\.tasks\[0\]: task name "two words"/,
    );
  });
});
