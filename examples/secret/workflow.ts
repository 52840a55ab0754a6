/**
 * The shared definition of the Diffie-Hellman secret workflow: five tasks that alternate
 * between the remote and the server. Both sides import this file; neither imports the
 * other's task code.
 *
 * @module
 */
// The side-neutral entry (jsr:@tradeline/workflow/define): no gRPC, so a task isolate loads it
// with no permissions at all.
import { defineWorkflow, returns } from "../../workflow/mod.ts";

export const secretWorkflow = defineWorkflow("dh-secret", { version: 1 })
  // 1. remote: picks x, publishes g^x mod p (x stays on the remote).
  .remote("remote-public", { returns: returns<{ gx: bigint }>(), description: "pick x, send g^x" })
  // 2. server: picks y, publishes g^y mod p (y stays on the server).
  .server("server-public", { returns: returns<{ gy: bigint }>(), description: "pick y, send g^y" })
  // 3. remote: derives the secret, proves it with HMAC("remote").
  .remote("remote-secret", {
    returns: returns<{ proof: Uint8Array }>(),
    description: "derive the secret, send its proof",
  })
  // 4. server: derives the secret, checks the remote's proof, proves it with HMAC("server").
  .server("server-secret", {
    returns: returns<{ proof: Uint8Array; fingerprint: string }>(),
    description: "derive the secret, check the remote's proof, send its own",
  })
  // 5. remote: checks the server's proof.
  .remote("remote-verify", {
    returns: returns<{ agreed: boolean; fingerprint: string }>(),
    description: "check the server's proof",
  });
