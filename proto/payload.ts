/**
 * The payload codec: turns a {@linkcode Value} into bytes and back, exactly.
 *
 * Values are encoded as the `Value` message of `workflow.proto`. A value that cannot be
 * sent fails here, at the sender, with an error naming the path of the bad field.
 *
 * @module
 */
import { tradeline } from "./_gen/workflow.js";
import { ErrorCode, WorkflowError } from "../workflow/errors.ts";
import { joinPath, MAX_PAYLOAD_DEPTH, type Value } from "../workflow/payload.ts";

const WireValue = tradeline.workflow.v1.Value;
type WireValue = tradeline.workflow.v1.Value.$Properties;

/**
 * Encodes `value` into bytes.
 *
 * @param value The value to send.
 * @param path How to name the value in an error, for example `output` or `input.x`.
 * @throws {WorkflowError} `InvalidPayload`, naming the path of the first bad field.
 */
export function encodePayload(value: unknown, path: string): Uint8Array {
  const fast = encodeFast(value);
  if (fast !== undefined) return fast;
  // Values the fast path does not take (class instances with `toJSON()`, and everything that
  // is refused, which this path names precisely) go through the generated code.
  return WireValue.encode(toWire(value, path, new Set(), 0)).finish();
}

/**
 * Decodes bytes made by {@linkcode encodePayload}.
 *
 * @param bytes The encoded value.
 * @param path How to name the value in an error.
 * @throws {WorkflowError} `InvalidPayload` when the bytes are not a well-formed value.
 */
export function decodePayload(bytes: Uint8Array, path: string): Value {
  let message: tradeline.workflow.v1.Value;
  try {
    message = WireValue.decode(bytes);
  } catch (error) {
    throw invalid(`Cannot decode ${path}: ${(error as Error).message}`, error);
  }
  return fromWire(message, path, 0);
}

function invalid(message: string, cause?: unknown): WorkflowError {
  return new WorkflowError(ErrorCode.InvalidPayload, message, { cause });
}

function refuse(path: string, why: string): WorkflowError {
  return invalid(`Cannot send ${path}: ${why}`);
}

function toWire(value: unknown, path: string, ancestors: Set<object>, depth: number): WireValue {
  switch (typeof value) {
    case "undefined":
      return { undefinedValue: true };
    case "boolean":
      return { boolValue: value };
    case "number":
      return { numberValue: value };
    case "string":
      if (!value.isWellFormed()) {
        throw refuse(path, "the string is not well-formed unicode (it has a lone surrogate)");
      }
      return { stringValue: value };
    case "bigint":
      return { bigintValue: bigintToWire(value) };
    case "function":
      throw refuse(path, "a function cannot be sent");
    case "symbol":
      throw refuse(path, "a symbol cannot be sent");
  }
  if (value === null) return { nullValue: true };
  const object = value as object;
  if (object instanceof Uint8Array) return { bytesValue: object };
  if (object instanceof Date) return { dateValue: object.getTime() };
  if (ancestors.has(object)) throw refuse(path, "the value refers to itself (a cycle)");
  if (depth >= MAX_PAYLOAD_DEPTH) {
    throw refuse(path, `the value is nested deeper than ${MAX_PAYLOAD_DEPTH} levels`);
  }
  if (ArrayBuffer.isView(object) || object instanceof ArrayBuffer) {
    throw refuse(path, `a ${object.constructor.name} cannot be sent; use a Uint8Array`);
  }
  ancestors.add(object);
  try {
    if (Array.isArray(object)) {
      const items: WireValue[] = new Array(object.length);
      for (let i = 0; i < object.length; i++) {
        items[i] = toWire(object[i], joinPath(path, i), ancestors, depth + 1);
      }
      return { listValue: { items } };
    }
    const prototype = Object.getPrototypeOf(object);
    if (prototype !== Object.prototype && prototype !== null) {
      const toJSON = read(object, "toJSON", path);
      if (typeof toJSON === "function") {
        let plain: unknown;
        try {
          plain = toJSON.call(object);
        } catch (error) {
          throw refuse(path, `its toJSON() threw: ${describe(error)}`);
        }
        return toWire(plain, path, ancestors, depth + 1);
      }
      const kind = prototype?.constructor?.name ?? "object";
      throw refuse(path, `a ${kind} has no plain form; send a plain object, array or primitive`);
    }
    if (Object.getOwnPropertySymbols(object).length > 0) {
      throw refuse(path, "an object with symbol keys cannot be sent");
    }
    const fields = [];
    for (const key of Object.keys(object)) {
      const field = read(object, key, path);
      fields.push({ key, value: toWire(field, joinPath(path, key), ancestors, depth + 1) });
    }
    return { objectValue: { fields } };
  } finally {
    ancestors.delete(object);
  }
}

/** Reads a property, turning a throwing getter into an error that names the field. */
function read(object: object, key: string, path: string): unknown {
  try {
    return (object as Record<string, unknown>)[key];
  } catch (error) {
    throw refuse(joinPath(path, key), `reading it threw: ${describe(error)}`);
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function fromWire(message: tradeline.workflow.v1.Value, path: string, depth: number): Value {
  const nests = message.kind === "listValue" || message.kind === "objectValue";
  if (nests && depth >= MAX_PAYLOAD_DEPTH) {
    throw invalid(`Cannot decode ${path}: nested deeper than ${MAX_PAYLOAD_DEPTH} levels`);
  }
  switch (message.kind) {
    case "nullValue":
      return null;
    case "undefinedValue":
      return undefined;
    case "boolValue":
      return message.boolValue!;
    case "numberValue":
      return message.numberValue!;
    case "stringValue":
      return message.stringValue!;
    case "bigintValue":
      return bigintFromWire(message.bigintValue!);
    case "bytesValue": {
      // Copy out of the receive buffer, which may be pooled, into a plain Uint8Array.
      const bytes = message.bytesValue!;
      return new Uint8Array(bytes);
    }
    case "dateValue":
      return new Date(message.dateValue!);
    case "listValue": {
      const items = message.listValue!.items ?? [];
      const list: Value[] = new Array(items.length);
      for (let i = 0; i < items.length; i++) {
        list[i] = fromWire(
          items[i] as tradeline.workflow.v1.Value,
          joinPath(path, i),
          depth + 1,
        );
      }
      return list;
    }
    case "objectValue": {
      const object: Record<string, Value> = {};
      for (const field of message.objectValue!.fields ?? []) {
        const key = field.key ?? "";
        const value = fromWire(
          (field.value ?? {}) as tradeline.workflow.v1.Value,
          joinPath(path, key),
          depth + 1,
        );
        // defineProperty, so that a "__proto__" key stays a key and never a prototype.
        Object.defineProperty(object, key, {
          value,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      return object;
    }
    default:
      throw invalid(`Cannot decode ${path}: the value has no kind`);
  }
}

function bigintToWire(value: bigint): tradeline.workflow.v1.BigInteger.$Properties {
  const negative = value < 0n;
  let hex = (negative ? -value : value).toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  const magnitude = new Uint8Array(hex.length / 2);
  for (let i = 0; i < magnitude.length; i++) {
    magnitude[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  }
  return { negative, magnitude };
}

function bigintFromWire(wire: tradeline.workflow.v1.BigInteger.$Properties): bigint {
  const magnitude = wire.magnitude ?? new Uint8Array();
  let hex = "";
  for (const byte of magnitude) hex += byte.toString(16).padStart(2, "0");
  const value = hex === "" ? 0n : BigInt(`0x${hex}`);
  return wire.negative ? -value : value;
}

// --- The fast path of encodePayload --------------------------------------------------------
//
// The same bytes as `WireValue.encode(toWire(value))`, written directly: a first pass measures
// every message (and reads every property once, into a plan), a second writes the plan into
// one buffer of the exact size. No intermediate message objects, no path strings, no
// fork/ldelim copies: several times faster on run records, which the stores encode on every
// save. It declines (returns `undefined`) anything but plain data, so every refusal and
// every `toJSON()` still goes through `toWire`, with its precise error messages.

const enum Kind {
  Undefined,
  Null,
  Bool,
  Number,
  String,
  BigInt,
  Bytes,
  Date,
  List,
  Object,
  Key,
}

/** Thrown inside the fast path for a value it does not take. */
const DECLINE: unique symbol = Symbol("decline");

/** What the first pass records, in pre-order, for the second to write. */
interface Plan {
  kinds: Kind[];
  items: unknown[];
  sizes: number[];
}

function encodeFast(value: unknown): Uint8Array | undefined {
  const plan: Plan = { kinds: [], items: [], sizes: [] };
  let size: number;
  try {
    size = measure(value, 0, plan);
  } catch (error) {
    if (error === DECLINE) return undefined;
    return undefined; // a throwing getter: toWire reads it again and names the field
  }
  const out = new Uint8Array(size);
  const state = { out, view: new DataView(out.buffer), pos: 0, k: 0, s: 0, plan };
  writeValue(state);
  if (state.pos !== size) throw new Error(`Internal error: payload size ${state.pos} != ${size}`);
  return out;
}

function varintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

/** UTF-8 length of a well-formed string. */
function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Records `value` into `plan`; returns the size of its `Value` message. */
function measure(value: unknown, depth: number, plan: Plan): number {
  const { kinds, items, sizes } = plan;
  switch (typeof value) {
    case "undefined":
      kinds.push(Kind.Undefined);
      items.push(undefined);
      return 2;
    case "boolean":
      kinds.push(Kind.Bool);
      items.push(value);
      return 2;
    case "number":
      kinds.push(Kind.Number);
      items.push(value);
      return 9;
    case "string": {
      if (!value.isWellFormed()) throw DECLINE;
      const n = utf8Length(value);
      kinds.push(Kind.String);
      items.push(value);
      sizes.push(n);
      return 1 + varintSize(n) + n;
    }
    case "bigint": {
      const wire = bigintToWire(value);
      const m = wire.magnitude!.length;
      const inner = (wire.negative ? 2 : 0) + (m > 0 ? 1 + varintSize(m) + m : 0);
      kinds.push(Kind.BigInt);
      items.push(wire);
      sizes.push(inner);
      return 1 + varintSize(inner) + inner;
    }
    case "object":
      break;
    default:
      throw DECLINE;
  }
  if (value === null) {
    kinds.push(Kind.Null);
    items.push(null);
    return 2;
  }
  if (value instanceof Uint8Array) {
    kinds.push(Kind.Bytes);
    items.push(value);
    const n = value.length;
    return 1 + varintSize(n) + n;
  }
  if (value instanceof Date) {
    kinds.push(Kind.Date);
    items.push(value.getTime());
    return 9;
  }
  if (depth >= MAX_PAYLOAD_DEPTH || ArrayBuffer.isView(value)) throw DECLINE;
  if (Array.isArray(value)) {
    const length = value.length;
    kinds.push(Kind.List);
    items.push(length);
    const at = sizes.length;
    sizes.push(0);
    let inner = 0;
    for (let i = 0; i < length; i++) {
      const slot = sizes.length;
      sizes.push(0);
      const s = measure(value[i], depth + 1, plan);
      sizes[slot] = s;
      inner += 1 + varintSize(s) + s;
    }
    sizes[at] = inner;
    return 1 + varintSize(inner) + inner;
  }
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) throw DECLINE;
  if (Object.getOwnPropertySymbols(value).length > 0) throw DECLINE;
  const keys = Object.keys(value);
  kinds.push(Kind.Object);
  items.push(keys.length);
  const at = sizes.length;
  sizes.push(0);
  let inner = 0;
  for (const key of keys) {
    if (!key.isWellFormed()) throw DECLINE;
    const kb = utf8Length(key);
    kinds.push(Kind.Key);
    items.push(key);
    const slot = sizes.length;
    sizes.push(0, kb, 0);
    const s = measure((value as Record<string, unknown>)[key], depth + 1, plan);
    const field = (kb > 0 ? 1 + varintSize(kb) + kb : 0) + 1 + varintSize(s) + s;
    sizes[slot] = field;
    sizes[slot + 2] = s;
    inner += 1 + varintSize(field) + field;
  }
  sizes[at] = inner;
  return 1 + varintSize(inner) + inner;
}

interface WriteState {
  out: Uint8Array;
  view: DataView;
  pos: number;
  /** Next entry of `plan.kinds` / `plan.items`. */
  k: number;
  /** Next entry of `plan.sizes`. */
  s: number;
  plan: Plan;
}

function writeVarint(w: WriteState, n: number): void {
  while (n > 0x7f) {
    w.out[w.pos++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  w.out[w.pos++] = n;
}

function writeUtf8(w: WriteState, text: string, n: number): void {
  if (n === text.length) {
    // ASCII only.
    for (let i = 0; i < n; i++) w.out[w.pos++] = text.charCodeAt(i);
    return;
  }
  w.pos += encoder.encodeInto(text, w.out.subarray(w.pos, w.pos + n)).written;
}

const encoder = new TextEncoder();

function writeValue(w: WriteState): void {
  const { kinds, items, sizes } = w.plan;
  const kind = kinds[w.k];
  const item = items[w.k++];
  const out = w.out;
  switch (kind) {
    case Kind.Undefined:
      out[w.pos++] = 16;
      out[w.pos++] = 1;
      return;
    case Kind.Null:
      out[w.pos++] = 8;
      out[w.pos++] = 1;
      return;
    case Kind.Bool:
      out[w.pos++] = 24;
      out[w.pos++] = item ? 1 : 0;
      return;
    case Kind.Number:
    case Kind.Date:
      out[w.pos++] = kind === Kind.Number ? 33 : 65;
      w.view.setFloat64(w.pos, item as number, true);
      w.pos += 8;
      return;
    case Kind.String: {
      const n = sizes[w.s++];
      out[w.pos++] = 42;
      writeVarint(w, n);
      writeUtf8(w, item as string, n);
      return;
    }
    case Kind.BigInt: {
      const { negative, magnitude } = item as { negative: boolean; magnitude: Uint8Array };
      out[w.pos++] = 50;
      writeVarint(w, sizes[w.s++]);
      if (negative) {
        out[w.pos++] = 8;
        out[w.pos++] = 1;
      }
      if (magnitude.length > 0) {
        out[w.pos++] = 18;
        writeVarint(w, magnitude.length);
        out.set(magnitude, w.pos);
        w.pos += magnitude.length;
      }
      return;
    }
    case Kind.Bytes: {
      const bytes = item as Uint8Array;
      out[w.pos++] = 58;
      writeVarint(w, bytes.length);
      out.set(bytes, w.pos);
      w.pos += bytes.length;
      return;
    }
    case Kind.List: {
      out[w.pos++] = 74;
      writeVarint(w, sizes[w.s++]);
      for (let i = 0; i < (item as number); i++) {
        out[w.pos++] = 10;
        writeVarint(w, sizes[w.s++]);
        writeValue(w);
      }
      return;
    }
    case Kind.Object: {
      out[w.pos++] = 82;
      writeVarint(w, sizes[w.s++]);
      for (let i = 0; i < (item as number); i++) {
        const field = sizes[w.s++];
        const kb = sizes[w.s++];
        const s = sizes[w.s++];
        const key = items[w.k++] as string;
        out[w.pos++] = 10;
        writeVarint(w, field);
        if (kb > 0) {
          out[w.pos++] = 10;
          writeVarint(w, kb);
          writeUtf8(w, key, kb);
        }
        out[w.pos++] = 18;
        writeVarint(w, s);
        writeValue(w);
      }
      return;
    }
    default:
      throw new Error(`Internal error: unexpected payload plan entry ${kind}`);
  }
}
