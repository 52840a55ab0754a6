/**
 * How frames ride on gRPC: as raw bytes both ways (the protobuf encoding is ours, in
 * `wire.ts`), on one bidirectional-streaming method.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type * as grpc from "@grpc/grpc-js";

/** A frame's bytes as grpc-js writes them: a Buffer view, no copy. */
export const serializeFrame = (bytes: Uint8Array): Buffer =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** A received frame as it is: a Buffer is a Uint8Array. */
export const deserializeFrame = (bytes: Buffer): Uint8Array => bytes;

/** A bidirectional-streaming method at `path` that carries raw frames both ways. */
export function bidiFrameMethod(
  path: string,
): grpc.MethodDefinition<Uint8Array, Uint8Array> {
  return {
    path,
    requestStream: true,
    responseStream: true,
    requestSerialize: serializeFrame,
    requestDeserialize: deserializeFrame,
    responseSerialize: serializeFrame,
    responseDeserialize: deserializeFrame,
  };
}
