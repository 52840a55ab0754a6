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
