/**
 * The values that cross the wire between the two sides of a run.
 *
 * @module
 */

/**
 * A value that can cross the wire exactly: it arrives as it was sent.
 *
 * `bigint` of any size, `Uint8Array`, `Date`, `null`, `undefined`, numbers (NaN, infinities
 * and -0 included), well-formed unicode strings, arrays and plain objects of these. Class
 * instances are sent through their `toJSON()` when they have one, and refused otherwise.
 */
export type Value =
  | null
  | undefined
  | boolean
  | number
  | string
  | bigint
  | Uint8Array
  | Date
  | readonly Value[]
  | { readonly [key: string]: Value };

/** The deepest nesting of arrays and objects a payload may have. */
export const MAX_PAYLOAD_DEPTH = 32;

/** Formats a property path the way a reader writes it: `output.key.p`, `list[3]`, `o["a b"]`. */
export function joinPath(path: string, key: string | number): string {
  if (typeof key === "number") return `${path}[${key}]`;
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key)
    ? `${path}.${key}`
    : `${path}[${JSON.stringify(key)}]`;
}
