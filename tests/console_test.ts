/**
 * The console's progress display: a bar redrawn in place on a terminal, plain throttled lines
 * in a pipe. The terminal is a real pseudo-terminal, made by `script` (util-linux).
 */
import assert from "node:assert/strict";

const root = new URL("../", import.meta.url).pathname;
const FIXTURE = "tests/fixtures/progress_bar.ts";

async function hasScript(): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("script", { args: ["--version"], stdout: "null" })
      .output();
    return success;
  } catch {
    return false;
  }
}

const scriptFound = await hasScript();
if (!scriptFound) {
  console.warn(
    "!!! console_test: the terminal step is SKIPPED: `script` (util-linux) is not installed",
  );
}

async function run(command: string, args: string[], env?: Record<string, string>) {
  const { stdout, success } = await new Deno.Command(command, {
    args,
    cwd: root,
    // With `env`, only it and what Deno needs: a NO_COLOR of the caller would turn the bar off.
    ...(env ? { clearEnv: true, env: { ...denoEnv(), ...env } } : {}),
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.ok(success);
  return new TextDecoder().decode(stdout);
}

function denoEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ["HOME", "PATH", "DENO_DIR", "XDG_CACHE_HOME", "TMPDIR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

Deno.test({
  name: "on a terminal, progress is a bar redrawn in place",
  ignore: !scriptFound,
  fn: async () => {
    const deno = Deno.execPath();
    const text = await run("script", ["-qec", `${deno} run -A ${FIXTURE}`, "/dev/null"], {
      TERM: "xterm",
    });
    const redraws = text.split("\r\u001b[2K").length - 1;
    assert.ok(redraws >= 4, `${redraws} redraws in ${JSON.stringify(text)}`);
    assert.ok(text.includes("█"), "a filled bar");
    assert.match(text, /copy .*✔ completed/);
  },
});

Deno.test("in a pipe, progress is plain lines, at most one a second per task", async () => {
  const text = await run(Deno.execPath(), ["run", "-A", FIXTURE]);
  assert.ok(!text.includes("\r") && !text.includes("\u001b"), JSON.stringify(text));
  const lines = text.trim().split("\n");
  assert.equal(lines.length, 3, text);
  assert.match(lines[0], /copy {2}▶ running {2}0% step 0$/);
  assert.match(lines[1], /copy {2}▶ running {2}100% step 4$/);
  assert.match(lines[2], /copy {2}✔ completed/);
});
