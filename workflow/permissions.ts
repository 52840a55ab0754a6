/**
 * The Deno permissions a remote task declares, in Deno's own vocabulary.
 *
 * @module
 */

/**
 * One kind of permission: `true` grants all of it, a list grants exactly those entries, and
 * `false` or absence grants nothing.
 */
export type PermissionGrant = boolean | readonly string[];

/**
 * The permissions of a remote task. Every kind left out is denied.
 *
 * @example A task that reads one folder and nothing else
 * ```ts
 * import type { Permissions } from "@tradeline/workflow";
 *
 * const logs: Permissions = { read: ["./logs"] };
 * ```
 */
export interface Permissions {
  /** Paths the task may read. */
  read?: PermissionGrant;
  /** Paths the task may write. */
  write?: PermissionGrant;
  /** Hosts (with optional ports) the task may connect to or listen on. */
  net?: PermissionGrant;
  /** Environment variables the task may read. */
  env?: PermissionGrant;
  /** Programs the task may run. */
  run?: PermissionGrant;
  /** System information the task may query (`hostname`, `osRelease`, ...). */
  sys?: PermissionGrant;
  /** Dynamic libraries the task may load. */
  ffi?: PermissionGrant;
  /** Hosts the task may import code from at run time. */
  import?: PermissionGrant;
}

/** Every permission kind, in Deno's order. */
export const PERMISSION_KINDS: readonly (keyof Permissions)[] = [
  "read",
  "write",
  "net",
  "env",
  "run",
  "sys",
  "ffi",
  "import",
];
