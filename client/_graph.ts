/**
 * The program a task isolate runs, and what its module graph loads.
 *
 * An isolate's entry is a `data:` module that statically imports `sandbox_main.ts` and
 * imports the task module with a literal `import()`. Deno loads such a graph as part of the
 * program, before and apart from the task's permission checks, so the task needs no read
 * grant for its own code. The flip side: whatever the graph imports (a JSON file anywhere
 * on disk included) loads unchecked. So before anything runs, `deno info` lists the graph,
 * and a local file outside the module's project folder is refused.
 *
 * @module
 */
import { dirname, isAbsolute, join, resolve, sep as SEPARATOR } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { ErrorCode, WorkflowError } from "../workflow/errors.ts";

/** How to start a task isolate: its entry, config flags and project folders. */
export interface IsolateProgram {
  /** The task module's URL. */
  module: string;
  /** The `data:` entry module. */
  entry: string;
  /** `--config=...` or `--no-config`. */
  configArgs: string[];
  /** The config file used, if any. */
  config?: string;
  /** Folders local module files may come from. */
  roots: string[];
}

/** What a module graph loads. */
export interface ModuleGraph {
  /** Local files, absolute paths. */
  files: string[];
  /** Local files outside the project folders: the isolate refuses to start with them. */
  outside: string[];
  /** Remote hosts (`host:port`) modules come from: the isolate may import from them. */
  hosts: string[];
  /** npm packages, `name@version`. */
  npm: string[];
}

/**
 * The program of an isolate for `module`.
 *
 * @param module The task module's URL.
 * @param config A config file (relative to `cwd`), `false` for none, or `undefined` to use
 * the nearest `deno.json` or `deno.jsonc` above a local module.
 * @param cwd The working folder.
 */
export function isolateProgram(
  module: string,
  config: string | URL | false | undefined,
  cwd: string,
): IsolateProgram {
  const main = new URL("./sandbox_main.ts", import.meta.url).href;
  const code = `import{main}from${JSON.stringify(main)};main(()=>import(${
    JSON.stringify(module)
  }));`;
  const entry = `data:application/javascript,${encodeURIComponent(code)}`;
  const local = module.startsWith("file:") ? fromFileUrl(module) : undefined;
  const found = config === undefined
    ? (local ? findConfig(dirname(local), module) : undefined)
    : config === false
    ? undefined
    : config instanceof URL || config.startsWith("file:")
    ? fromFileUrl(config)
    : isAbsolute(config)
    ? config
    : resolve(cwd, config);
  const roots = new Set<string>();
  if (found) roots.add(dirname(found));
  if (local) roots.add(dirname(local));
  if (main.startsWith("file:")) roots.add(dirname(dirname(fromFileUrl(main))));
  return {
    module,
    entry,
    configArgs: found ? [`--config=${found}`] : ["--no-config"],
    ...(found ? { config: found } : {}),
    roots: [...roots],
  };
}

function findConfig(folder: string, module: string): string | undefined {
  for (let dir = folder;;) {
    for (const name of ["deno.json", "deno.jsonc"]) {
      const path = join(dir, name);
      try {
        if (Deno.statSync(path).isFile) return path;
      } catch (error) {
        if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
          continue;
        }
        throw new TypeError(
          `Cannot look for the deno.json of task module ${module} at ${path}: ${
            (error as Error).message
          }. Allow the client to read that folder, or pass sandbox.config`,
        );
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/**
 * Runs `start`, which starts Deno, and explains a refusal to: a client that isolates tasks
 * must be allowed to run Deno.
 */
export function startDeno<T>(start: () => T): T {
  try {
    return start();
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw new WorkflowError(
        ErrorCode.PermissionDenied,
        `Cannot start task isolates: this client may not run Deno (${error.message}). Start the client with --allow-run=${Deno.execPath()}, or connect with isolation: "none" to run tasks in this process`,
        { cause: error },
      );
    }
    throw error;
  }
}

/**
 * Lists what the isolate's module graph loads, with `deno info`.
 *
 * @throws {WorkflowError} `InvalidImplementation` when the graph does not load.
 */
export async function inspectGraph(program: IsolateProgram, cwd: string): Promise<ModuleGraph> {
  const { code, stdout, stderr } = await startDeno(() =>
    new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", "--quiet", "--no-lock", ...program.configArgs, program.entry],
      cwd,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output()
  );
  const fail = (why: string) =>
    new WorkflowError(
      ErrorCode.InvalidImplementation,
      `Cannot load the task module ${program.module}: ${why}`,
    );
  if (code !== 0) throw fail(new TextDecoder().decode(stderr).trim());
  const info = JSON.parse(new TextDecoder().decode(stdout)) as {
    modules?: { specifier: string; error?: string; npmPackage?: string; kind?: string }[];
    redirects?: Record<string, string>;
  };
  const files = new Set<string>();
  const hosts = new Set<string>();
  const npm = new Set<string>();
  const errors: string[] = [];
  const visit = (specifier: string) => {
    const url = new URL(specifier);
    if (url.protocol === "file:") files.add(fromFileUrl(url.href));
    else if (url.protocol === "https:" || url.protocol === "http:") {
      hosts.add(`${url.hostname}:${url.port || (url.protocol === "https:" ? 443 : 80)}`);
    }
  };
  for (const module of info.modules ?? []) {
    if (module.error) errors.push(`${module.specifier}: ${module.error}`);
    if (module.specifier.startsWith("file:")) {
      const file = fromFileUrl(module.specifier);
      // Deno loads a module graph's files without a permission check: a graph that reaches
      // raw bytes or text (a database, a key), or the client's own data folder, would hand
      // them to a task that was granted nothing.
      if (module.kind === "external") {
        errors.push(
          `${file} is imported as raw bytes or text; a task module may import only code and JSON`,
        );
      } else if (file.split(SEPARATOR).includes(".workflow")) {
        errors.push(`${file} is in a .workflow data folder, which a task module may not import`);
      }
    }
    if (module.npmPackage) npm.add(module.npmPackage);
    else visit(module.specifier);
  }
  for (const [from, to] of Object.entries(info.redirects ?? {})) {
    if (!from.startsWith("npm:")) {
      visit(from);
      visit(to);
    }
  }
  if (errors.length > 0) throw fail(errors.join("; "));
  const inside = (file: string) =>
    program.roots.some((root) =>
      file.startsWith(root.endsWith(SEPARATOR) ? root : root + SEPARATOR)
    );
  return {
    files: [...files].sort(),
    outside: [...files].filter((file) => !inside(file)).sort(),
    hosts: [...hosts].sort(),
    npm: [...npm].sort(),
  };
}
