/**
 * What every TypeScript client of clusterd checks of the server it reached,
 * beyond the chain (the cluster CA): the usual host-name check AND clusterd's
 * subject (CN `clusterd`, O `amalgam:control-plane`). Node certificates are
 * signed by the same CA and are TLS servers too (page servers, agent
 * endpoints), so the host name alone cannot tell clusterd from a node that
 * took a convenient name; the subject can, because only `init` and
 * `join --control-plane` write it.
 */
import { checkServerIdentity as checkHostName, type PeerCertificate } from 'node:tls';
import {
  CLUSTERD_COMMON_NAME,
  CONTROL_PLANE_ORGANIZATION,
  isClusterdCertificate,
} from './identity.ts';

export function checkClusterdIdentity(host: string, cert: PeerCertificate): Error | undefined {
  const hostError = checkHostName(host, cert);
  if (hostError) return hostError;
  if (isClusterdCertificate(cert)) return undefined;
  const subject = cert?.subject as Record<string, unknown> | undefined;
  const error = new Error(
    `the server at ${host} is not clusterd: its certificate is CN=${String(subject?.CN)} O=${String(subject?.O)}, not CN=${CLUSTERD_COMMON_NAME} O=${CONTROL_PLANE_ORGANIZATION}`,
  ) as Error & { code: string };
  error.code = 'ERR_TLS_CERT_NOT_CLUSTERD';
  return error;
}
