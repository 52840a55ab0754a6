/**
 * Recognises an error that a Deno permission check raised, wherever it is wrapped.
 *
 * @module
 */

const REQUIRES = /Requires (\w+) access(?: to ("(?:[^"\\]|\\.)*"|<[^>]+>|[^\s,]+))?/;

/**
 * The access a permission check refused, named the way Deno names it (for example
 * `read access to "/etc/passwd"`), when `error` or one of its causes is such a refusal;
 * `undefined` otherwise.
 */
export function deniedAccess(error: unknown): string | undefined {
  for (let depth = 0; depth < 8 && error !== undefined && error !== null; depth++) {
    const message = (error as { message?: unknown }).message;
    const capable = error instanceof Deno.errors.NotCapable ||
      (error as { name?: unknown }).name === "NotCapable";
    if (typeof message === "string") {
      const match = message.match(REQUIRES);
      if (
        match && (capable || /NotCapable|run again with the --allow-|never grants/.test(message))
      ) {
        return match[2] ? `${match[1]} access to ${match[2]}` : `${match[1]} access`;
      }
      if (capable) return message;
    }
    error = (error as { cause?: unknown }).cause;
  }
  return undefined;
}
