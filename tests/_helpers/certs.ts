/**
 * Test certificates, made at test time by `openssl` with the README's recipe: a CA, a server
 * certificate, client certificates (X.509 v3 with extensions: Deno's TLS refuses v1 client
 * certificates), and a second CA with a client certificate of its own.
 *
 * @module
 */

/** A certificate and its private key, PEM. */
export interface KeyPair {
  cert: string;
  key: string;
}

/** Everything {@linkcode makeCertificates} made. */
export interface TestCertificates extends AsyncDisposable {
  /** The folder they are in. */
  dir: string;
  /** The CA that signs the server and the agents. */
  ca: KeyPair;
  /** The server's, for `localhost` and `127.0.0.1`. */
  server: KeyPair;
  /** Client certificates signed by `ca`, by common name. */
  clients: Record<string, KeyPair>;
  /** Another CA, which the server does not trust. */
  otherCa: KeyPair;
  /** A client certificate signed by `otherCa`, with the common name of a trusted agent. */
  impostor: KeyPair;
}

const SERVER_EXT = [
  "basicConstraints=CA:FALSE",
  "keyUsage=critical,digitalSignature",
  "extendedKeyUsage=serverAuth",
  "subjectAltName=DNS:localhost,IP:127.0.0.1",
];
const CLIENT_EXT = [
  "basicConstraints=CA:FALSE",
  "keyUsage=critical,digitalSignature",
  "extendedKeyUsage=clientAuth",
];

async function openssl(dir: string, ...args: string[]): Promise<void> {
  const { code, stderr } = await new Deno.Command("openssl", {
    args,
    cwd: dir,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(stderr)}`);
  }
}

async function ca(dir: string, name: string, cn: string): Promise<KeyPair> {
  await openssl(
    dir,
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
    ...["-keyout", `${name}.key`, "-out", `${name}.crt`, "-days", "2", "-subj", `/CN=${cn}`],
    ...["-addext", "basicConstraints=critical,CA:TRUE"],
    ...["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
  );
  return read(dir, name);
}

async function leaf(
  dir: string,
  name: string,
  signer: string,
  cn: string,
  extensions: string[],
): Promise<KeyPair> {
  await openssl(
    dir,
    ...["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
    ...["-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`],
  );
  await Deno.writeTextFile(`${dir}/${name}.ext`, extensions.join("\n") + "\n");
  await openssl(
    dir,
    ...["x509", "-req", "-in", `${name}.csr`, "-CA", `${signer}.crt`, "-CAkey", `${signer}.key`],
    ...["-CAcreateserial", "-days", "2", "-extfile", `${name}.ext`, "-out", `${name}.crt`],
  );
  return read(dir, name);
}

async function read(dir: string, name: string): Promise<KeyPair> {
  return {
    cert: await Deno.readTextFile(`${dir}/${name}.crt`),
    key: await Deno.readTextFile(`${dir}/${name}.key`),
  };
}

/**
 * Makes a CA, a server certificate, a client certificate per name in `clients`, and an
 * impostor signed by another CA, in a temporary folder that disposal removes.
 */
export async function makeCertificates(clients: string[]): Promise<TestCertificates> {
  const dir = await Deno.makeTempDir({ prefix: "workflow-certs-" });
  try {
    const [caPair, otherCa] = await Promise.all([
      ca(dir, "ca", "Workflow Test CA"),
      ca(dir, "other-ca", "Some Other CA"),
    ]);
    // Sequentially: signing with one CA updates its serial file.
    const server = await leaf(dir, "server", "ca", "localhost", SERVER_EXT);
    const made: Record<string, KeyPair> = {};
    for (const cn of clients) {
      made[cn] = await leaf(dir, `client-${cn}`, "ca", cn, [
        ...CLIENT_EXT,
        `subjectAltName=URI:spiffe://workflow.test/${cn}`,
      ]);
    }
    const impostor = await leaf(dir, "impostor", "other-ca", clients[0] ?? "agent", CLIENT_EXT);
    return {
      dir,
      ca: caPair,
      server,
      clients: made,
      otherCa,
      impostor,
      async [Symbol.asyncDispose]() {
        await Deno.remove(dir, { recursive: true });
      },
    };
  } catch (error) {
    await Deno.remove(dir, { recursive: true });
    throw error;
  }
}
