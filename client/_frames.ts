/**
 * The frames between a remote and the isolate of one task attempt: a 4-byte marker, a
 * 4-byte big-endian length, then a value encoded by the payload codec (so `bigint`,
 * `Uint8Array` and `Date` cross exactly). Used on the isolate's standard input and output.
 *
 * @module
 */
import { decodePayload, encodePayload } from "../proto/payload.ts";
import { ErrorCode, WorkflowError } from "../workflow/errors.ts";
import type { Value } from "../workflow/payload.ts";

/** The largest frame either side accepts, in bytes. */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;

/** "TWF1": marks the start of every frame, so stray bytes are told apart from a frame. */
const MARKER = new Uint8Array([0x54, 0x57, 0x46, 0x31]);
const HEADER_BYTES = 8;

/** A decoded frame: a plain object with a string `t` (its type). */
export type Frame = { readonly t: string; readonly [field: string]: Value };

/** Encodes one frame. */
export function encodeFrame(frame: Frame): Uint8Array {
  const body = encodePayload(frame, `frame "${frame.t}"`);
  if (body.byteLength > MAX_FRAME_BYTES) {
    throw new WorkflowError(
      ErrorCode.ResourceExhausted,
      `Cannot send a "${frame.t}" frame of ${body.byteLength} bytes to or from a task isolate: the limit is ${MAX_FRAME_BYTES}`,
    );
  }
  const bytes = new Uint8Array(HEADER_BYTES + body.byteLength);
  bytes.set(MARKER, 0);
  new DataView(bytes.buffer).setUint32(4, body.byteLength);
  bytes.set(body, HEADER_BYTES);
  return bytes;
}

/** Reads frames from a byte stream, one at a time. */
export class FrameReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #what: string;
  #buffer: Uint8Array = new Uint8Array(0);

  /**
   * @param reader Where the bytes come from.
   * @param what Who sends them, for errors (for example `the isolate of task "x"`).
   */
  constructor(reader: ReadableStreamDefaultReader<Uint8Array>, what: string) {
    this.#reader = reader;
    this.#what = what;
  }

  /**
   * The next frame, or `undefined` at the end of the stream.
   *
   * @throws {WorkflowError} `ProtocolViolation` when the bytes are not a frame.
   */
  async next(): Promise<Frame | undefined> {
    const header = await this.#take(HEADER_BYTES);
    if (!header) return undefined;
    if (!MARKER.every((byte, i) => header[i] === byte)) {
      throw this.#violation(
        `wrote ${
          JSON.stringify(new TextDecoder().decode(header))
        }... to its standard output, which carries only frames (task code must print with console, which goes to standard error)`,
      );
    }
    const length = new DataView(header.buffer, header.byteOffset).getUint32(4);
    if (length > MAX_FRAME_BYTES) {
      throw this.#violation(`sent a frame of ${length} bytes; the limit is ${MAX_FRAME_BYTES}`);
    }
    const body = await this.#take(length);
    if (!body) throw this.#violation("ended in the middle of a frame");
    const frame = decodePayload(body, "frame");
    if (
      frame === null || typeof frame !== "object" || Array.isArray(frame) ||
      frame instanceof Uint8Array || frame instanceof Date ||
      typeof (frame as { t?: unknown }).t !== "string"
    ) {
      throw this.#violation("sent a frame that is not an object with a type");
    }
    return frame as Frame;
  }

  /** Releases the stream. */
  async cancel(): Promise<void> {
    await this.#reader.cancel().catch(() => {});
  }

  async #take(count: number): Promise<Uint8Array | undefined> {
    if (this.#buffer.byteLength < count) {
      const chunks: Uint8Array[] = [this.#buffer];
      let length = this.#buffer.byteLength;
      while (length < count) {
        const { value, done } = await this.#reader.read();
        if (done) {
          if (length === 0) return undefined;
          throw this.#violation("ended in the middle of a frame");
        }
        chunks.push(value);
        length += value.byteLength;
      }
      const joined = new Uint8Array(length);
      let offset = 0;
      for (const chunk of chunks) {
        joined.set(chunk, offset);
        offset += chunk.byteLength;
      }
      this.#buffer = joined;
    }
    const taken = this.#buffer.subarray(0, count);
    this.#buffer = this.#buffer.subarray(count);
    return taken;
  }

  #violation(what: string): WorkflowError {
    return new WorkflowError(ErrorCode.ProtocolViolation, `${this.#what} ${what}`);
  }
}
