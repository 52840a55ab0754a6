/**
 * The remote's tasks of the secret workflow. The client runs each one in its own isolate,
 * which imports this module (`module: import.meta.url`); they declare no permissions, so
 * they get none: the exponent `x` lives in `ctx.local`, which the client keeps for them.
 *
 * @module
 */
import { remoteTasks } from "../../workflow/mod.ts";
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

export const secretRemoteTasks = remoteTasks(secretWorkflow, {
  "remote-public": async (_input, ctx) => {
    const x = randomExponent();
    await ctx.local.set("x", x); // kept by the remote, never sent
    return { gx: modPow(G, x, P) };
  },
  "remote-secret": async (input, ctx) => {
    const x = await ctx.local.get<bigint>("x");
    if (x === undefined) throw new Error("The remote's exponent x is missing");
    const secret = modPow(checkPublic(input["server-public"].gy), x, P);
    return { proof: await prove(secret, "remote") };
  },
  "remote-verify": async (input, ctx) => {
    const x = await ctx.local.get<bigint>("x");
    if (x === undefined) throw new Error("The remote's exponent x is missing");
    const secret = modPow(checkPublic(input["server-public"].gy), x, P);
    if (!await verify(secret, "server", input["server-secret"].proof)) {
      throw new Error("The server's proof does not match: the secrets differ");
    }
    return { agreed: true, fingerprint: await secretFingerprint(secret) };
  },
}, { module: import.meta.url });
