/**
 * `client.processes.logs` (`clusteradm logs`): a cluster process's output is
 * kept by the agent of the node that runs it and served on that agent's
 * endpoint (mutual TLS; the agent's certificate must name the node). Each
 * node keeps the output of the copies it ran, so after a migration the
 * current home has the newest part.
 */
import { request } from 'node:https';
import type { Readable } from 'node:stream';
import type { ProcessesApi, ProcessLog, ProcessLogRequest } from './amalgam-client.ts';
import { ClientError } from './errors.ts';

export interface LogTls {
  ca: string;
  cert: string;
  key: string;
}

/** The client's credentials, as its options hold them (a join-only client has no certificate). */
export interface ClientCredentials {
  ca: string;
  cert?: string | undefined;
  key?: string | undefined;
}

/** Where `cpid`'s output is (the node asked for, or its home, and that node's agent), then its stream. */
export async function readProcessLog(
  processes: Pick<ProcessesApi, 'get' | 'listLoads'>,
  credentials: ClientCredentials,
  cpid: number,
  options: ProcessLogRequest = {},
): Promise<ProcessLog> {
  const { ca, cert, key } = credentials;
  if (cert === undefined || key === undefined) {
    throw new ClientError('UNAVAILABLE', "an agent's log needs a client certificate");
  }
  const record = await processes.get(cpid);
  const node = options.node ?? record.home;
  const address = (await processes.listLoads()).find((l) => l.node === node)?.agentAddress;
  if (!address) {
    throw new ClientError('UNAVAILABLE', `the agent of ${node} has not published its endpoint`);
  }
  const stream = await fetchProcessLog({ ca, cert, key }, node, address, cpid, options.follow);
  return { node, stream };
}

export function fetchProcessLog(
  tls: LogTls,
  node: string,
  address: string,
  cpid: number,
  follow = false,
): Promise<Readable> {
  const m = /^\[?([^\]]+)\]?:(\d+)$/.exec(address);
  if (!m) return Promise.reject(new Error(`not host:port: ${address}`));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: m[1],
        port: Number(m[2]),
        method: 'GET',
        path: `/v1/logs/${cpid}${follow ? '?follow=1' : ''}`,
        ca: tls.ca,
        cert: tls.cert,
        key: tls.key,
        servername: node,
        checkServerIdentity: (_host, cert) => {
          const subject = cert.subject as unknown as Record<string, unknown> | undefined;
          return subject?.CN === `node:${node}`
            ? undefined
            : new Error(`the agent at ${address} is not node ${node}`);
        },
        agent: false,
      },
      (res) => {
        if (res.statusCode === 200) return resolve(res);
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () => reject(new Error(`${node}: HTTP ${res.statusCode} ${text.trim()}`)));
      },
    );
    req.on('error', reject);
    req.end();
  });
}
