/**
 * The builder's types catch mistakes at compile time: runs `deno check` on
 * tests/fixtures/typing_fixture.ts, then on a copy without its `@ts-expect-error` lines.
 */
import assert from "node:assert/strict";

const root = new URL("../", import.meta.url).pathname;
const fixtures = new URL("./fixtures/", import.meta.url).pathname;
const FIXTURE = `${fixtures}typing_fixture.ts`;
const DIRECTIVE = /^\s*\/\/ @ts-expect-error \((\w)\)/;

/** What the compiler must say for each labelled mistake of the fixture. */
const EXPECTED: Record<string, { code: string; text: RegExp }> = {
  a: { code: "TS7053", text: /Property 'later' does not exist/ },
  b: {
    code: "TS2339",
    text: /Property 'missing' does not exist on type '\{ x: number; big: bigint; \}'/,
  },
  c: { code: "TS2345", text: /Property 'second' is missing/ },
  d: {
    code: "TS2353",
    text: /Object literal may only specify known properties, and 'first' does not exist/,
  },
  e: {
    code: "TS2345",
    text: /Argument of type '"same"' is not assignable to parameter of type 'never'/,
  },
  f: { code: "TS2322", text: /Type 'string' is not assignable to type 'number'/ },
  g: { code: "TS2345", text: /Argument of type '"config"' is not assignable/ },
  h: { code: "TS2322", text: /Type 'number' is not assignable to type 'string'/ },
  i: { code: "TS2353", text: /'config' does not exist/ },
};

async function check(file: string): Promise<{ success: boolean; output: string }> {
  const { success, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["check", "--quiet", file],
    cwd: root,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { success, output: decoder.decode(stdout) + decoder.decode(stderr) };
}

interface Diagnostic {
  code: string;
  line: number;
  text: string;
}

/** Splits `deno check` output into diagnostics, each with its code and line in `file`. */
function diagnostics(output: string, file: string): Diagnostic[] {
  const blocks = output.split(/^(?=TS\d+ \[ERROR\])/m).filter((b) => /^TS\d+ /.test(b));
  return blocks.map((text) => {
    const at = text.match(new RegExp(`at file://${RegExp.escape(file)}:(\\d+):\\d+`));
    return { code: text.match(/^TS\d+/)![0], line: at ? Number(at[1]) : -1, text };
  });
}

Deno.test("the builder's types accept correct tasks and reject each mistake", async (t) => {
  const source = await Deno.readTextFile(FIXTURE);
  const lines = source.split("\n");

  await t.step("the fixture type-checks, every @ts-expect-error being used", async () => {
    const { success, output } = await check(FIXTURE);
    assert.ok(success, `deno check failed:\n${output}`);
  });

  await t.step("without its @ts-expect-error lines, each mistake is an error", async () => {
    // Where each labelled mistake lands once the directives are gone: the line after each.
    const kept: string[] = [];
    const expected = new Map<string, number>();
    for (const line of lines) {
      const directive = line.match(DIRECTIVE);
      if (directive) expected.set(directive[1], kept.length + 1);
      else kept.push(line);
    }
    assert.deepEqual([...expected.keys()].sort(), Object.keys(EXPECTED).sort());

    const copy = `${fixtures}_typing_fixture_${crypto.randomUUID().slice(0, 8)}.ts`;
    await Deno.writeTextFile(copy, kept.join("\n"));
    try {
      const { success, output } = await check(copy);
      assert.equal(success, false, "deno check passed on code with type errors");
      const found = diagnostics(output, copy);
      assert.equal(found.length, (output.match(/^TS\d+ \[ERROR\]/gm) ?? []).length);
      assert.ok(found.length >= 6, `expected at least 6 errors, got:\n${output}`);
      for (const [label, line] of expected) {
        const want = EXPECTED[label];
        const hit = found.find((d) => d.line === line);
        assert.ok(hit, `(${label}): no error on line ${line} of the copy:\n${output}`);
        assert.equal(hit.code, want.code, `(${label}): ${hit.text}`);
        assert.match(hit.text, want.text, `(${label})`);
      }
      // No error other than the labelled ones.
      const stray = found.filter((d) => ![...expected.values()].includes(d.line));
      assert.deepEqual(stray, []);
    } finally {
      await Deno.remove(copy).catch(() => {});
    }
  });
});
