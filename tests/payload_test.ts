/**
 * The payload codec: values cross the wire exactly, and bad values fail at the sender with
 * the path of the bad field.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { decodePayload, encodePayload } from "../proto/payload.ts";
import { MAX_PAYLOAD_DEPTH } from "../workflow/payload.ts";
import { WorkflowError } from "../mod.ts";

const roundTrip = (value: unknown) => decodePayload(encodePayload(value, "output"), "output");

/** Asserts `fn` throws a WorkflowError InvalidPayload whose message contains `text`. */
function assertInvalid(fn: () => unknown, text: string): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof WorkflowError, `not a WorkflowError: ${error}`);
    assert.equal(error.code, "InvalidPayload");
    assert.ok(error.message.includes(text), `${JSON.stringify(error.message)} lacks ${text}`);
    return true;
  });
}

/** A small seeded PRNG (mulberry32), so failures reproduce. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function nested(depth: number, leaf: unknown): unknown {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { a: value };
  return value;
}

Deno.test("encodePayload()/decodePayload() round-trip values exactly", async (t) => {
  await t.step("bigints of any size and sign", () => {
    const big = (1n << 2047n) + 12345678901234567890n; // 2048 bits
    assert.equal(big.toString(2).length, 2048);
    for (const value of [big, -big, 0n, 1n, -1n, 255n, 256n, -256n, 7n ** 5000n, -(2n ** 65536n)]) {
      assert.equal(roundTrip(value), value);
    }
  });

  await t.step("Uint8Array: empty, 1 MiB random, and a Buffer as a plain Uint8Array", () => {
    const empty = roundTrip(new Uint8Array());
    assert.ok(empty instanceof Uint8Array);
    assert.equal(empty.length, 0);
    const random = new Uint8Array(1 << 20);
    for (let i = 0; i < random.length; i += 65536) {
      crypto.getRandomValues(random.subarray(i, i + 65536));
    }
    assert.deepEqual(roundTrip(random), random);
    const buffer = Buffer.from([1, 2, 3, 250]);
    const back = roundTrip(buffer) as Uint8Array;
    assert.equal(Object.getPrototypeOf(back), Uint8Array.prototype);
    assert.deepEqual(back, new Uint8Array([1, 2, 3, 250]));
  });

  await t.step("Date, an Invalid Date included", () => {
    const date = new Date("2024-02-29T12:34:56.789Z");
    const back = roundTrip(date);
    assert.ok(back instanceof Date);
    assert.equal(back.getTime(), date.getTime());
    const invalid = roundTrip(new Date(NaN));
    assert.ok(invalid instanceof Date);
    assert.ok(Number.isNaN(invalid.getTime()));
  });

  await t.step("null, undefined, booleans and special numbers", () => {
    assert.equal(roundTrip(null), null);
    assert.equal(roundTrip(undefined), undefined);
    assert.equal(roundTrip(true), true);
    assert.equal(roundTrip(false), false);
    const object = roundTrip({ a: undefined, b: null }) as Record<string, unknown>;
    assert.deepEqual(Object.keys(object), ["a", "b"]);
    assert.equal(object.a, undefined);
    assert.equal(object.b, null);
    for (const n of [NaN, Infinity, -Infinity, -0, 0, 1.5, Number.MAX_VALUE, Number.MIN_VALUE]) {
      assert.ok(Object.is(roundTrip(n), n), `${n}`);
    }
    assert.ok(Object.is(roundTrip(0), 0));
  });

  await t.step("unicode strings and a 5 MB string", () => {
    for (
      const s of ["", "emoji 😀👩‍👩‍👧", "漢字かな한글", "e\u0301 n\u0303", "𝔸𝕓 \u{10FFFF}", "\0nul"]
    ) {
      assert.equal(roundTrip(s), s);
    }
    const large = "abcdé😀".repeat(500_000); // 10 UTF-8 bytes a repeat
    assert.equal(new TextEncoder().encode(large).length, 5_000_000);
    assert.equal(roundTrip(large), large);
  });

  await t.step("nested objects and arrays, key order kept", () => {
    const value = {
      z: 1,
      a: [1, "two", [3n, { deep: new Uint8Array([4]) }], { d: new Date(5) }],
      m: { y: null, x: undefined, "a b": true, 10: "ten" },
    };
    const back = roundTrip(value) as typeof value;
    assert.deepEqual(back, value);
    assert.deepEqual(Object.keys(back), ["z", "a", "m"]);
    assert.deepEqual(Object.keys(back.m), ["10", "y", "x", "a b"]);
    assert.deepEqual(roundTrip(nested(MAX_PAYLOAD_DEPTH, 1)), nested(MAX_PAYLOAD_DEPTH, 1));
  });

  await t.step('a "__proto__" key stays an own key and leaves the prototype alone', () => {
    const value = JSON.parse('{"__proto__": {"polluted": true}, "a": 1}');
    const back = roundTrip(value) as Record<string, unknown>;
    assert.equal(Object.getPrototypeOf(back), Object.prototype);
    assert.ok(Object.hasOwn(back, "__proto__"));
    assert.deepEqual(Object.keys(back), ["__proto__", "a"]);
    assert.deepEqual(Object.getOwnPropertyDescriptor(back, "__proto__")?.value, { polluted: true });
    assert.equal((back as { polluted?: unknown }).polluted, undefined);
    assert.equal(({} as { polluted?: unknown }).polluted, undefined);
  });

  await t.step("sparse arrays: holes become undefined", () => {
    // deno-lint-ignore no-sparse-arrays
    const back = roundTrip([1, , 3, ,]) as unknown[];
    assert.equal(back.length, 4);
    assert.ok(1 in back && 3 in back, "holes are filled");
    assert.deepEqual(back, [1, undefined, 3, undefined]);
  });

  await t.step("a class instance with toJSON() is sent as its result", () => {
    class Money {
      constructor(readonly cents: bigint) {}
      toJSON() {
        return { cents: this.cents, currency: "EUR" };
      }
    }
    assert.deepEqual(roundTrip({ price: new Money(1999n) }), {
      price: { cents: 1999n, currency: "EUR" },
    });
  });
});

Deno.test("encodePayload() names the path of the field it cannot send", async (t) => {
  await t.step("a function field", () => {
    assertInvalid(() => encodePayload({ key: { p: () => 1 } }, "output"), "output.key.p");
  });
  await t.step("a symbol at an array index", () => {
    assertInvalid(() => encodePayload({ list: [1, 2, Symbol("s")] }, "output"), "output.list[2]");
  });
  await t.step("a cycle", () => {
    const a: Record<string, unknown> = { b: { list: [0] } };
    (a.b as { list: unknown[] }).list.push(a);
    assertInvalid(() => encodePayload(a, "output"), "output.b.list[1]");
  });
  await t.step("a Map", () => {
    assertInvalid(() => encodePayload({ m: new Map([[1, 2]]) }, "output"), "output.m");
  });
  await t.step("a class instance without toJSON()", () => {
    class Point {
      x = 1;
    }
    assertInvalid(() => encodePayload([{ at: new Point() }], "output"), "output[0].at");
  });
  await t.step("a string with a lone surrogate", () => {
    assertInvalid(() => encodePayload({ "a b": "x\uD800y" }, "output"), 'output["a b"]');
    assertInvalid(() => encodePayload("\uDC00", "input.s"), "input.s");
  });
  await t.step("an Int32Array", () => {
    assertInvalid(() => encodePayload({ n: new Int32Array(2) }, "output"), "output.n");
  });
  await t.step(`an object nested deeper than ${MAX_PAYLOAD_DEPTH} levels`, () => {
    const path = "output" + ".a[0]".repeat(MAX_PAYLOAD_DEPTH / 2);
    assertInvalid(() => encodePayload(nested(MAX_PAYLOAD_DEPTH + 1, 1), "output"), `${path}:`);
  });
  await t.step("a getter or a toJSON() that throws", () => {
    const getter = {
      get secret(): string {
        throw new Error("no access");
      },
    };
    assertInvalid(() => encodePayload({ a: getter }, "output"), "output.a.secret");
    class Broken {
      toJSON(): never {
        throw new Error("broken");
      }
    }
    assertInvalid(
      () => encodePayload({ b: [new Broken()] }, "output"),
      "output.b[0]: its toJSON()",
    );
  });
});

Deno.test("decodePayload() refuses malformed bytes with InvalidPayload only", async (t) => {
  await t.step("truncated encodings", () => {
    const bytes = encodePayload({ text: "hello world", n: [1n, 2n], d: new Date(0) }, "output");
    for (let end = 1; end < bytes.length; end++) {
      assert.throws(() => decodePayload(bytes.subarray(0, end), "output"), (error: unknown) => {
        assert.ok(error instanceof WorkflowError, `at ${end}: ${error}`);
        assert.equal(error.code, "InvalidPayload");
        assert.match(error.message, /^Cannot decode output/);
        return true;
      });
    }
  });
  await t.step("a payload nested exactly as deep as the sender allows decodes", () => {
    const deepest = nested(MAX_PAYLOAD_DEPTH, 1);
    assert.deepEqual(roundTrip(deepest), deepest);
  });
  await t.step("empty bytes: a value with no kind", () => {
    assertInvalid(() => decodePayload(new Uint8Array(), "input.x"), "input.x");
  });
  await t.step("2,000 random byte arrays decode or throw WorkflowError", () => {
    const random = prng(20240229);
    let decoded = 0;
    for (let i = 0; i < 2000; i++) {
      const bytes = new Uint8Array(1 + Math.floor(random() * 64));
      for (let j = 0; j < bytes.length; j++) bytes[j] = Math.floor(random() * 256);
      try {
        decodePayload(bytes, "output");
        decoded++;
      } catch (error) {
        assert.ok(error instanceof WorkflowError, `case ${i} [${bytes}]: ${error}`);
        assert.equal(error.code, "InvalidPayload", `case ${i}`);
      }
    }
    assert.ok(decoded < 2000, "random bytes all decoded: the decoder checks nothing");
  });
});
