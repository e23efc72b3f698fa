/**
 * The first step of every join: the server's CA, read from a TLS handshake
 * that sends nothing, must hash to `--ca-cert-hash` before anything else is
 * sent to it.
 */
import { discoverCa } from '../client/index.ts';
import { verifyCaCertHash } from '../pki/index.ts';
import { CliError } from './errors.ts';

export async function pinServerCa(
  server: string,
  caCertHash: string,
  progress: (line: string) => void,
): Promise<string> {
  progress(`reading the CA of ${server}`);
  const { ca } = await discoverCa(server);
  if (!verifyCaCertHash(ca, caCertHash)) {
    throw new CliError('CA_HASH_MISMATCH', `${server} presented a CA that is not ${caCertHash}`, {
      server,
    });
  }
  return ca;
}
