/**
 * A machine joined to a test cluster as `clusteradm join` would do it: a fresh
 * key and CSR, a bootstrap token, the join, and the node's certificate, key
 * and CA written into its own home directory.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { type Agent, startAgent } from '../../services/agent/agent.ts';
import type { PageServerOptions } from '../../services/agent/pageserver-process.ts';
import type { JoinResult } from '../../services/api/contracts.ts';
import { type AmalgamClient, createClient } from '../../services/client/index.ts';
import { createKeyAndCsr } from '../../services/pki/index.ts';
import type { ClusterdReplicas } from './clusterd.ts';

export interface JoinedNode {
  joined: JoinResult;
  keyPem: string;
  /** Absolute paths of the node's credentials, as agent.json names them. */
  files: { certFile: string; keyFile: string; caFile: string };
}

export async function joinNode(
  cd: ClusterdReplicas,
  name: string,
  options: { home: string; contributedBytes: number; memoryBytes?: number },
): Promise<JoinedNode> {
  const admin = createClient({ endpoints: cd.urls, ...cd.admin });
  const anonymous = createClient({ endpoints: cd.urls, ca: cd.admin.ca });
  try {
    const { token } = await admin.tokens.create({ description: `test node ${name}` });
    const { csrPem, keyPem } = await createKeyAndCsr({ commonName: name });
    const joined = await anonymous.nodes.join({
      token,
      name,
      csr: csrPem,
      capacity: {
        memoryBytes: options.memoryBytes ?? 4 * options.contributedBytes,
        swapBytes: 0,
        contributedBytes: options.contributedBytes,
        cpus: 1,
        cpuSpeed: 1,
      },
    });
    await mkdir(options.home, { recursive: true });
    const files = {
      certFile: join(options.home, 'node.crt'),
      keyFile: join(options.home, 'node.key'),
      caFile: join(options.home, 'ca.crt'),
    };
    await writeFile(files.certFile, joined.certificate);
    await writeFile(files.keyFile, keyPem, { mode: 0o600 });
    await writeFile(files.caFile, joined.caCertificate);
    return { joined, keyPem, files };
  } finally {
    await Promise.all([admin.close(), anonymous.close()]);
  }
}

/** A joined node with its agent running and its own API client (its certificate). */
export interface AgentNode extends JoinedNode {
  agent: Agent;
  client: AmalgamClient;
  /** The node's credentials as PEM (NetworkMemory's `tls`). */
  tls: { ca: string; cert: string; key: string };
}

/**
 * joinNode, then the node's agent (heartbeat every second, health check every
 * 500 ms, logs silent unless AGENT_LOG names a level) supervising a page server
 * with `pageserver`. The caller closes `agent` and `client`.
 */
export async function joinNodeWithAgent(
  cd: ClusterdReplicas,
  name: string,
  options: {
    home: string;
    contributedBytes: number;
    memoryBytes?: number;
    pageserver: PageServerOptions;
  },
): Promise<AgentNode> {
  const node = await joinNode(cd, name, options);
  const { joined, keyPem, files } = node;
  const agent = await startAgent({
    config: {
      server: cd.urls,
      name,
      ...files,
      heartbeatSeconds: 1,
      pageserver: options.pageserver,
    },
    logger: pino({ level: process.env.AGENT_LOG ?? 'silent' }),
    healthMs: 500,
  });
  const client = createClient({
    endpoints: cd.urls,
    ca: joined.caCertificate,
    cert: joined.certificate,
    key: keyPem,
  });
  return {
    ...node,
    agent,
    client,
    tls: { ca: joined.caCertificate, cert: joined.certificate, key: keyPem },
  };
}
