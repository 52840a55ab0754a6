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

/** One kind of permission: `"read"`, `"net"`, ... */
export type PermissionKind = keyof Permissions;

/**
 * A grant with its entries checked and resolved: paths made absolute, hosts lower-cased.
 * `true` grants the whole kind; `false` grants none of it.
 */
export type ResolvedGrant = boolean | readonly string[];

/** The permissions of a task (or a ceiling), every kind present and resolved. */
export type ResolvedPermissions = { readonly [K in PermissionKind]: ResolvedGrant };

const PATH_KINDS: ReadonlySet<PermissionKind> = new Set(["read", "write", "ffi"]);
const HOST_KINDS: ReadonlySet<PermissionKind> = new Set(["net", "import"]);

/**
 * Checks permissions as declared (or passed as a ceiling) and resolves them: relative paths
 * (for `read`, `write`, `ffi`, and `run` programs given with a slash) against `cwd`, hosts
 * to lower case; an empty list is the same as `false`.
 *
 * @param permissions The declared permissions; `undefined` grants nothing.
 * @param cwd The absolute folder relative paths resolve against.
 * @param what How to name the permissions in an error, for example `task "summarise"`.
 * @returns Every kind, resolved.
 * @throws {TypeError} When a kind is unknown or an entry is not a usable string.
 */
export function resolvePermissions(
  permissions: Permissions | undefined,
  cwd: string,
  what: string,
): ResolvedPermissions {
  if (permissions !== undefined && (typeof permissions !== "object" || permissions === null)) {
    throw new TypeError(`Cannot use the permissions of ${what}: expected an object`);
  }
  for (const kind of Object.keys(permissions ?? {})) {
    if (!PERMISSION_KINDS.includes(kind as PermissionKind)) {
      throw new TypeError(
        `Cannot use the permissions of ${what}: unknown kind "${kind}" (expected ${
          PERMISSION_KINDS.join(", ")
        })`,
      );
    }
  }
  const resolved = {} as Record<PermissionKind, ResolvedGrant>;
  for (const kind of PERMISSION_KINDS) {
    resolved[kind] = resolveGrant(kind, permissions?.[kind], cwd, what);
  }
  return resolved;
}

function resolveGrant(
  kind: PermissionKind,
  grant: PermissionGrant | undefined,
  cwd: string,
  what: string,
): ResolvedGrant {
  if (grant === undefined || grant === false) return false;
  if (grant === true) return true;
  if (!Array.isArray(grant)) {
    throw new TypeError(
      `Cannot use the permissions of ${what}: ${kind} must be true, false or a list of strings`,
    );
  }
  const entries = new Set<string>();
  for (const entry of grant) {
    // Deno separates a flag's entries with commas: an entry cannot hold one.
    if (typeof entry !== "string" || entry.trim() === "" || /[,\0\n]/.test(entry)) {
      throw new TypeError(
        `Cannot use the permissions of ${what}: ${kind} entry ${
          JSON.stringify(entry)
        } is not a non-empty string without commas`,
      );
    }
    entries.add(resolveEntry(kind, entry.trim(), cwd));
  }
  return entries.size === 0 ? false : [...entries];
}

function resolveEntry(kind: PermissionKind, entry: string, cwd: string): string {
  if (PATH_KINDS.has(kind) || (kind === "run" && /[\\/]/.test(entry))) {
    return resolvePath(cwd, entry);
  }
  if (HOST_KINDS.has(kind)) return entry.toLowerCase();
  return entry;
}

/** `path` made absolute against `cwd` and normalised, with no trailing separator. */
function resolvePath(cwd: string, path: string): string {
  const windows = /^[A-Za-z]:[\\/]|^\\\\/.test(cwd);
  const separator = windows ? "\\" : "/";
  const absolute = windows ? /^[A-Za-z]:[\\/]|^\\\\/.test(path) : path.startsWith("/");
  const parts: string[] = [];
  const joined = absolute ? path : `${cwd}${separator}${path}`;
  const [head, ...rest] = joined.split(/[\\/]+/);
  for (const part of rest) {
    if (part === "" || part === ".") continue;
    if (part === "..") parts.pop();
    else parts.push(part);
  }
  return windows ? `${head}\\${parts.join("\\")}` : `/${parts.join("/")}`;
}

/**
 * Names one access the way Deno does in its errors: `read access to "/etc/passwd"`, or
 * `all read access` when `entry` is left out.
 */
export function describeAccess(kind: PermissionKind, entry?: string): string {
  return entry === undefined ? `all ${kind} access` : `${kind} access to "${entry}"`;
}

/**
 * Lists what `granted` asks for beyond `ceiling`, one access per entry, both resolved by
 * {@linkcode resolvePermissions}. An empty list means the grant fits.
 *
 * A ceiling path covers itself and everything below it; a ceiling host without a port covers
 * every port of it; an environment ceiling ending with `*` covers every name it prefixes.
 *
 * @returns The excess accesses, for example `['read access to "/etc"', "all net access"]`.
 */
export function permissionExcess(
  granted: ResolvedPermissions,
  ceiling: ResolvedPermissions,
): string[] {
  const excess: string[] = [];
  for (const kind of PERMISSION_KINDS) {
    const want = granted[kind];
    const cap = ceiling[kind];
    if (want === false || cap === true) continue;
    if (want === true) {
      excess.push(describeAccess(kind));
      continue;
    }
    for (const entry of want) {
      if (cap === false || !cap.some((allowed) => covers(kind, allowed, entry))) {
        excess.push(describeAccess(kind, entry));
      }
    }
  }
  return excess;
}

function covers(kind: PermissionKind, allowed: string, entry: string): boolean {
  if (allowed === entry) return true;
  if (PATH_KINDS.has(kind) || (kind === "run" && /[\\/]/.test(entry))) {
    const separator = allowed.includes("\\") ? "\\" : "/";
    const prefix = allowed.endsWith(separator) ? allowed : allowed + separator;
    return entry.startsWith(prefix);
  }
  if (HOST_KINDS.has(kind)) {
    // "host" covers "host:port"; "host:port" covers only itself.
    return !hasPort(allowed) && hasPort(entry) &&
      entry.slice(0, entry.lastIndexOf(":")) === allowed;
  }
  if (kind === "env" && allowed.endsWith("*")) return entry.startsWith(allowed.slice(0, -1));
  return false;
}

function hasPort(host: string): boolean {
  return /:\d+$/.test(host) && (!host.startsWith("[") || host.includes("]:"));
}

/**
 * One line that says what a grant allows: `none`, or the kinds and their entries, for
 * example `read /srv/logs; net api.example.com:443`.
 */
export function formatPermissions(permissions: ResolvedPermissions): string {
  const parts: string[] = [];
  for (const kind of PERMISSION_KINDS) {
    const grant = permissions[kind];
    if (grant === true) parts.push(`${kind} (all)`);
    else if (grant !== false) parts.push(`${kind} ${grant.join(", ")}`);
  }
  return parts.length === 0 ? "none" : parts.join("; ");
}
