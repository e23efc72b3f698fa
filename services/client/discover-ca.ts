/**
 * Reading a server's CA from its TLS handshake, trusting nothing.
 *
 * `clusteradm join` runs this before it has any reason to trust the server:
 * it opens a TLS connection with verification off, reads the certificate
 * chain the server presents up to its self-signed root, and closes the
 * connection WITHOUT WRITING A BYTE of application data. The caller then pins
 * the root against `--ca-cert-hash`, and only on a match opens a verified
 * connection (CA = that root) to send the token. So a server that is not the
 * cluster learns nothing but that someone did a TLS handshake with it.
 *
 * clusterd must therefore present its chain with the CA certificate in it
 * (`clusteradm init` writes clusterd.crt as server certificate + CA).
 */
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { connect, type DetailedPeerCertificate } from 'node:tls';
import { ClientError } from './errors.ts';

export interface DiscoveredCa {
  /** PEM of the self-signed root of the presented chain: the candidate cluster CA. */
  ca: string;
  /** PEM of every certificate presented, leaf first, root last. */
  chain: string[];
}

export interface DiscoverCaOptions {
  /** For the whole handshake. Default 10 s. */
  timeoutMs?: number;
}

/** Far more than a leaf, an intermediate and a root. */
const MAX_CHAIN_LENGTH = 10;

export function discoverCa(url: string, options: DiscoverCaOptions = {}): Promise<DiscoveredCa> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return Promise.reject(
      new ClientError('CA_DISCOVERY_FAILED', `not a URL: ${JSON.stringify(url)}`, { url }),
    );
  }
  if (parsed.protocol !== 'https:') {
    return Promise.reject(
      new ClientError('CA_DISCOVERY_FAILED', `only https:// URLs are supported: ${url}`, { url }),
    );
  }
  // URL keeps the brackets of an IPv6 literal.
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = parsed.port === '' ? 443 : Number(parsed.port);
  const timeoutMs = options.timeoutMs ?? 10_000;

  return new Promise((resolve, reject) => {
    const socket = connect({
      host,
      port,
      ...(isIP(host) === 0 ? { servername: host } : {}),
      // Deliberately unverified: the chain is checked by the caller's pin, and
      // nothing is sent on this connection.
      rejectUnauthorized: false,
    });
    const fail = (detail: string, cause?: unknown): void => {
      socket.destroy();
      reject(
        new ClientError(
          'CA_DISCOVERY_FAILED',
          `${parsed.origin}: ${detail}`,
          { url: parsed.origin },
          cause === undefined ? undefined : { cause },
        ),
      );
    };
    const timer = setTimeout(() => fail(`no TLS handshake within ${timeoutMs} ms`), timeoutMs);
    socket.once('error', (err) => {
      clearTimeout(timer);
      fail(err.message, err);
    });
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      let result: DiscoveredCa;
      try {
        result = chainOf(socket.getPeerCertificate(true));
      } catch (err) {
        fail(err instanceof Error ? err.message : String(err), err);
        return;
      }
      // close_notify, and nothing else; a server that never closes its side is cut off.
      socket.end();
      setTimeout(() => socket.destroy(), 1000).unref();
      resolve(result);
    });
  });
}

/** The presented chain, leaf to root; throws when it does not end in a self-signed certificate. */
function chainOf(leaf: DetailedPeerCertificate): DiscoveredCa {
  if (!leaf || !Buffer.isBuffer(leaf.raw)) throw new Error('the server presented no certificate');
  const certs: X509Certificate[] = [];
  let current: DetailedPeerCertificate | undefined = leaf;
  while (current && Buffer.isBuffer(current.raw) && certs.length < MAX_CHAIN_LENGTH) {
    const cert = new X509Certificate(current.raw);
    const previous = certs.at(-1);
    if (previous && previous.fingerprint256 === cert.fingerprint256) break; // Node's self-reference at the root
    certs.push(cert);
    if (current.issuerCertificate === current) break;
    current = current.issuerCertificate;
  }
  const root = certs.at(-1) as X509Certificate;
  if (!root.checkIssued(root) || !root.verify(root.publicKey)) {
    throw new Error(
      'the presented chain does not end in a self-signed CA certificate (clusterd must send its CA with its certificate)',
    );
  }
  if (!root.ca) throw new Error('the self-signed root of the presented chain is not a CA');
  return { ca: root.toString(), chain: certs.map((c) => c.toString()) };
}
