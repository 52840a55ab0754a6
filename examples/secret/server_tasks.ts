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

export const secretServerTasks = serverTasks(secretWorkflow, {
  "server-public": async (_input, ctx) => {
    const y = randomExponent();
    await ctx.local.set("y", y); // kept by the server, never sent
    return { gy: modPow(G, y, P) };
  },
  "server-secret": async (input, ctx) => {
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
