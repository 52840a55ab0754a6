/** The server's tasks of the secret workflow. @module */
import { serverTasks } from "../../mod.ts";
import {
  checkPublic,
  G,
  modPow,
  P,
  prove,
  randomExponent,
  secretFingerprint,
  verify,
} from "./dh.ts";
import { secretWorkflow } from "./workflow.ts";

/** A pause before each server task, in ms (`--step-delay`): to watch the run, or to kill a
 * process in the middle of it and see it resume. */
export const pacing = { stepDelay: 0 };

function pause(signal: AbortSignal): Promise<void> {
  if (pacing.stepDelay <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, pacing.stepDelay);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

export const secretServerTasks = serverTasks(secretWorkflow, {
  "server-public": async (_input, ctx) => {
    await pause(ctx.signal);
    const y = randomExponent();
    await ctx.local.set("y", y); // kept by the server, never sent
    return { gy: modPow(G, y, P) };
  },
  "server-secret": async (input, ctx) => {
    await pause(ctx.signal);
    const y = await ctx.local.get<bigint>("y");
    if (y === undefined) throw new Error("The server's exponent y is missing");
    const secret = modPow(checkPublic(input["remote-public"].gx), y, P);
    if (!await verify(secret, "remote", input["remote-secret"].proof)) {
      throw new Error("The remote's proof does not match: the secrets differ");
    }
    const fingerprint = await secretFingerprint(secret);
    console.log(`server: secret agreed (fingerprint ${fingerprint})`);
    return { proof: await prove(secret, "server"), fingerprint };
  },
});
