/**
 * What the persistent run stores share: a run record as one exact blob, the schema check and
 * migration seam applied on every load, and key-range helpers for listing.
 *
 * @module
 */
import { decodePayload, encodePayload } from "../proto/payload.ts";
import { ErrorCode, WorkflowError } from "../workflow/errors.ts";
import { RECORD_SCHEMA, type RunRecord } from "../workflow/state.ts";

/**
 * Encodes a whole record with the payload codec, which keeps `Uint8Array`, `bigint`, `Date`
 * and `undefined` exactly.
 *
 * @throws {WorkflowError} `InvalidPayload` naming the field that cannot be stored.
 */
export function encodeRecord(record: RunRecord): Uint8Array {
  try {
    return encodePayload(record, "record");
  } catch (error) {
    throw new WorkflowError(
      ErrorCode.InvalidPayload,
      `Cannot save run "${record.key}": its record cannot be stored (${(error as Error).message})`,
      { key: record.key, cause: error },
    );
  }
}

/** Where a stored record was found, for error messages. */
export interface StoredAt {
  /** The run's key. */
  key: string;
  /** The record's schema, as stored beside it. */
  schema: number;
  /** The store, as a user would recognise it (a file path, a collection). */
  where: string;
}

/**
 * Decodes a stored record after checking its schema, and migrates an older one.
 *
 * @throws {WorkflowError} `Internal` for a record of a newer schema (upgrade the package) or
 * a corrupt one.
 */
export function decodeRecord(bytes: Uint8Array, at: StoredAt): RunRecord {
  if (!Number.isInteger(at.schema) || at.schema < 1) {
    throw corrupt(at, `its schema "${at.schema}" is not a version number`);
  }
  if (at.schema > RECORD_SCHEMA) {
    throw new WorkflowError(
      ErrorCode.Internal,
      `Cannot load run "${at.key}" from ${at.where}: it was saved by a newer release of ` +
        `@tradeline/workflow (record schema ${at.schema}; this release reads up to ` +
        `${RECORD_SCHEMA}). Upgrade @tradeline/workflow on this process`,
      { key: at.key },
    );
  }
  let value: unknown;
  try {
    value = decodePayload(bytes, "record");
  } catch (error) {
    throw corrupt(at, (error as Error).message, error);
  }
  const record = value as Partial<RunRecord> | null;
  if (
    typeof record !== "object" || record === null || record.key !== at.key ||
    record.schema !== at.schema || typeof record.version !== "number"
  ) {
    throw corrupt(at, "the stored record does not match its key or schema");
  }
  return migrate(record as RunRecord);
}

/**
 * Brings a record of an older schema up to {@linkcode RECORD_SCHEMA}. Schema 1 is the first:
 * when the layout changes, add a step here (`if (record.schema < 2) { ... }`) and bump
 * `RECORD_SCHEMA`. The migrated record keeps its `version`, so the next save is still a
 * compare-and-set against what is stored.
 */
export function migrate(record: RunRecord): RunRecord {
  if (record.schema === RECORD_SCHEMA) return record;
  // No older schema exists yet.
  return { ...record, schema: RECORD_SCHEMA };
}

function corrupt(at: StoredAt, why: string, cause?: unknown): WorkflowError {
  return new WorkflowError(
    ErrorCode.Internal,
    `Cannot load run "${at.key}" from ${at.where}: the stored record is corrupt (${why})`,
    { key: at.key, cause },
  );
}

/**
 * Checks a list limit: a whole number from 0 up.
 *
 * @throws {RangeError} Otherwise.
 */
export function checkLimit(limit: number | undefined): number {
  const value = limit ?? 100;
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(`Cannot list runs: limit must be a whole number from 0, not ${limit}`);
  }
  return value;
}

/**
 * The smallest string greater than every string that starts with `prefix`, in the code point
 * order that SQLite and MongoDB compare keys in, or `undefined` when there is none.
 */
export function prefixEnd(prefix: string): string | undefined {
  const points = [...prefix];
  while (points.length > 0) {
    const last = points.pop()!.codePointAt(0)!;
    if (last < 0x10ffff) {
      const next = last === 0xd7ff ? 0xe000 : last + 1;
      return points.join("") + String.fromCodePoint(next);
    }
  }
  return undefined;
}
