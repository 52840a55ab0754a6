/**
 * Small workflows the tests share.
 *
 * @module
 */
import { defineWorkflow, remoteTasks, returns, serverTasks } from "../../mod.ts";

/** Five tasks that alternate sides, starting on the remote; each adds one to a counter. */
export const relay = defineWorkflow("relay", { version: 1 })
  .remote("r1", { returns: returns<{ n: number }>() })
  .server("s2", { returns: returns<{ n: number }>() })
  .remote("r3", { returns: returns<{ n: number }>() })
  .server("s4", { returns: returns<{ n: number }>() })
  .remote("r5", { returns: returns<{ n: number; text: string }>() });

export const relayServer = serverTasks(relay, {
  s2: (input) => ({ n: input.r1.n + 1 }),
  s4: (input) => ({ n: input.r3.n + 1 }),
});

export const relayRemote = remoteTasks(relay, {
  r1: () => ({ n: 1 }),
  r3: (input) => ({ n: input.s2.n + 1 }),
  r5: (input) => ({ n: input.s4.n + 1, text: "done ✓" }),
});

/** A workflow whose tasks fail on demand, to check failure reporting. */
export const fragile = defineWorkflow("fragile", { version: 1 })
  .remote("prepare", { returns: returns<{ failOn: string }>() })
  .server("check", { returns: returns<{ ok: boolean }>() })
  .remote("finish");

export const fragileServer = serverTasks(fragile, {
  check: (input) => {
    if (input.prepare.failOn === "server") throw new Error("the server task broke on purpose");
    return { ok: true };
  },
});

export function fragileRemote(failOn: "server" | "remote" | "none") {
  return remoteTasks(fragile, {
    prepare: () => ({ failOn }),
    finish: () => {
      if (failOn === "remote") throw new Error("the remote task broke on purpose");
    },
  });
}

/** A server task that floods the remote with progress frames between two remote tasks. */
export const burst = defineWorkflow("burst", { version: 1 })
  .remote("start")
  .server("flood", { returns: returns<{ sent: number }>() })
  .remote("finish", { returns: returns<{ pid: number }>() });

export function burstServer(frames: number) {
  return serverTasks(burst, {
    flood: async (_input, ctx) => {
      for (let i = 1; i <= frames; i++) {
        ctx.progress(i / frames, `frame ${i}`);
        // Yield now and then, so the remote can die while frames are still being written.
        if (i % 500 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
      }
      return { sent: frames };
    },
  });
}

export const burstRemote = remoteTasks(burst, {
  start: () => {},
  finish: () => ({ pid: Deno.pid }),
});
