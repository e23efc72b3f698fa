/**
 * Attack: reach etcd directly and write the cluster's keys, bypassing clusterd. etcd serves
 * clients over https only and asks each for a certificate of the etcd CA (`--client-cert-auth`),
 * a CA of its own: not even a node certificate of the cluster CA gets in. Each refusal is
 * asserted, and etcd's log names it ("rejected connection" with the TLS reason).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { noop } from 'cockatiel';
import { Etcd3, type IOptions } from 'etcd3';
import t, { type Test } from 'tap';
import { createClient } from '../../services/client/index.ts';
import {
  createClusterCa,
  createEtcdCa,
  createKeyAndCsr,
  issueEtcdCredential,
  signCsr,
} from '../../services/pki/index.ts';
import { EtcdStore } from '../../services/store/etcd-store.ts';
import { startClusterdReplicas } from '../harness/clusterd.ts';
import { startEtcdCluster } from '../harness/etcd-cluster.ts';
import { patient } from '../harness/patience.ts';
import { nodeCertificate } from '../harness/pki.ts';
import { until } from '../harness/until.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const SECRET = `secret-${process.pid}`;

const etcd = await startEtcdCluster({ size: 1 });
t.teardown(() => etcd.destroy());
const pki = etcd.tls;
if (!pki) throw new Error('the harness starts etcd with TLS by default');
const endpoint = etcd.endpoints()[0] as string;
const seeded = new EtcdStore(etcd.storeOptions());
await seeded.txn({
  compares: [],
  onSuccess: [{ type: 'put', key: 'processes/p1', value: SECRET }],
});
await seeded.close();

/** An etcd3 client without retries (each refusal shows at once), closed after one put. */
async function tryPut(hosts: string, extra: Partial<IOptions> = {}) {
  const client = new Etcd3({
    hosts,
    dialTimeout: 3_000,
    faultHandling: { host: () => noop, global: noop },
    ...extra,
  });
  try {
    await client.put('processes/evil').value('run-as-root');
    return 'accepted';
  } catch (err) {
    return String((err as Error).message);
  } finally {
    client.close();
  }
}

function rawRequest(url: string, options: Record<string, unknown>): Promise<string> {
  const request = url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve) => {
    const req = request(
      url,
      { method: 'POST', agent: false, timeout: 5_000, ...options },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve(`status ${res.statusCode}: ${body}`));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve(`error: ${err.message}`));
    req.end('{"key":"AA==","range_end":"AA=="}');
  });
}

async function etcdLogNames(pattern: RegExp): Promise<string> {
  return until(`etcd's log to show ${pattern}`, () => {
    const line = etcd
      .logTail(0, 200)
      .split('\n')
      .find((l) => /rejected connection/.test(l) && pattern.test(l));
    return line;
  });
}

t.test('a client without a certificate gets nothing', async (t) => {
  // etcd3 speaking TLS, trusting the etcd CA, but presenting no certificate.
  const noCert = await tryPut(endpoint, {
    credentials: { rootCertificate: Buffer.from(pki.clientPem.ca) },
  });
  t.not(noCert, 'accepted', `etcd3 without a client certificate is refused: ${noCert}`);
  t.match(noCert, /UNAVAILABLE|No connection established|handshake|certificate/i);
  t.ok(
    await etcdLogNames(/didn't provide a certificate/),
    "etcd logs the refusal: the client didn't provide a certificate",
  );

  // etcd3 in plain text on the same port.
  const plain = await tryPut(endpoint.replace('https:', 'http:'));
  t.not(plain, 'accepted', `plain-text gRPC is refused: ${plain}`);

  // The JSON gateway: plain http and https without a certificate get no reply of the API.
  const httpRange = await rawRequest(`${endpoint.replace('https:', 'http:')}/v3/kv/range`, {});
  // Go's TLS listener answers 400 "Client sent an HTTP request to an HTTPS server", or etcd's
  // connection multiplexer hangs up first: either way no answer of the API.
  t.match(httpRange, /^(status 400: Client sent an HTTP request to an HTTPS server|error: )/);
  t.notMatch(httpRange, SECRET);
  const httpsRange = await rawRequest(`${endpoint}/v3/kv/range`, { ca: pki.clientPem.ca });
  t.match(httpsRange, /^error: /, `https without a certificate: ${httpsRange}`);
  t.notMatch(httpsRange, SECRET);

  // The same range with clusterd's certificate does read the key: the refusals above are TLS.
  const allowed = await rawRequest(`${endpoint}/v3/kv/range`, { ...pki.clientPem });
  t.match(allowed, /^status 200: .*"kvs"/, 'with the etcd client certificate the range answers');
});

t.test('a client certificate of another CA is refused', async (t) => {
  // A node certificate of the cluster CA: why etcd has a CA of its own.
  const clusterCa = await createClusterCa();
  const node = await nodeCertificate(clusterCa, 'w1');
  const asNode = await tryPut(endpoint, {
    credentials: {
      rootCertificate: Buffer.from(pki.clientPem.ca),
      certChain: Buffer.from(node.cert),
      privateKey: Buffer.from(node.key),
    },
  });
  t.not(asNode, 'accepted', `a node certificate of the cluster CA is refused: ${asNode}`);
  // A look-alike etcd CA issuing a `clusterd` client certificate.
  const forged = await issueEtcdCredential(await createEtcdCa(), {
    kind: 'client',
    commonName: 'clusterd',
  });
  const asForged = await tryPut(endpoint, {
    credentials: {
      rootCertificate: Buffer.from(pki.clientPem.ca),
      certChain: Buffer.from(forged.certPem),
      privateKey: Buffer.from(forged.keyPem),
    },
  });
  t.not(asForged, 'accepted', `a clusterd certificate of another etcd CA is refused: ${asForged}`);
  t.ok(
    await etcdLogNames(/unknown authority/),
    'etcd logs: certificate signed by unknown authority',
  );

  const check = new EtcdStore(etcd.storeOptions());
  t.teardown(() => check.close());
  t.equal(await check.get('processes/evil'), undefined, 'nothing was written');
});

t.test('clusterd with its etcd client certificate reads and writes', async (t) => {
  const cd = await startClusterdReplicas({ store: etcd.storeConfig() });
  t.teardown(() => cd.destroy());
  const admin = createClient({ endpoints: cd.urls, ...cd.admin });
  t.teardown(() => admin.close());
  const created = await admin.tokens.create({ description: 'through clusterd' });
  const listed = await admin.tokens.list();
  t.ok(
    listed.some((x) => x.id === created.id),
    'a token written through clusterd is read back through clusterd',
  );
});

/** Runs clusterd's process on `config` until it exits; its code and output. */
async function runClusterd(t: Test, config: unknown) {
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-etcd-tls-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'clusterd.json');
  await writeFile(file, JSON.stringify(config));
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const child = spawn(
    process.execPath,
    [
      '--import',
      join(REPO, 'scripts/ts-loader.mjs'),
      join(REPO, 'services/controlplane/server.ts'),
      '--config',
      file,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env },
  );
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const code = await new Promise<number | null>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve(null);
    }, patient(60_000));
    child.once('exit', (c) => {
      clearTimeout(timer);
      resolve(c);
    });
  });
  return { code, stdout, stderr };
}

t.test('a wrong etcd certificate is a config error at start, not a crash loop', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'amalgam-etcd-tls-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ca = await createClusterCa();
  const server = await createKeyAndCsr({ commonName: 'clusterd' });
  const serverCert = await signCsr(ca, server.csrPem, {
    commonName: 'clusterd',
    ipAddresses: ['127.0.0.1'],
    usages: ['server'],
    validityDays: 1,
  });
  const forged = await issueEtcdCredential(await createEtcdCa(), {
    kind: 'client',
    commonName: 'clusterd',
  });
  const files = {
    'ca.crt': ca.certPem,
    'ca.key': ca.keyPem,
    'clusterd.crt': serverCert,
    'clusterd.key': server.keyPem,
    'forged.crt': forged.certPem,
    'forged.key': forged.keyPem,
  };
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  const base = {
    clusterName: 'tls',
    listen: { host: '127.0.0.1', port: 0 },
    tls: {
      certFile: join(dir, 'clusterd.crt'),
      keyFile: join(dir, 'clusterd.key'),
      caFile: join(dir, 'ca.crt'),
      caKeyFile: join(dir, 'ca.key'),
    },
  };

  const wrongCa = await runClusterd(t, {
    ...base,
    store: {
      backend: 'etcd',
      endpoints: etcd.endpoints(),
      tls: { ca: pki.clientFiles.ca, cert: join(dir, 'forged.crt'), key: join(dir, 'forged.key') },
    },
  });
  t.equal(wrongCa.code, 2, 'exit 2: a config error (clusterd.service does not restart on it)');
  t.match(
    wrongCa.stderr,
    /bad config .*store\.tls\.cert: not issued by the etcd CA in store\.tls\.ca/,
  );
  const fatal = wrongCa.stdout.split('\n').find((l) => /"level":60/.test(l));
  t.match(fatal, /"field":"store\.tls\.cert"/, 'the log line names the field');
  t.match(fatal, /"code":"INVALID_ARGUMENT"/);
  t.notMatch(wrongCa.stdout, /"stack"/, 'and carries no stack trace');

  const wrongKey = await runClusterd(t, {
    ...base,
    store: {
      backend: 'etcd',
      endpoints: etcd.endpoints(),
      tls: { ...pki.clientFiles, key: join(dir, 'forged.key') },
    },
  });
  t.equal(wrongKey.code, 2);
  t.match(wrongKey.stderr, /store\.tls\.key: not the key of the certificate in store\.tls\.cert/);

  const noTls = await runClusterd(t, {
    ...base,
    store: { backend: 'etcd', endpoints: etcd.endpoints() },
  });
  t.equal(noTls.code, 2, 'https:// endpoints without store.tls: refused by the config schema');
  t.match(noTls.stderr, /bad config .*store\.tls/);
});
