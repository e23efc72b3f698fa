/**
 * A Prometheus directory for a local cluster: deploy/prometheus's scrape config and alert rules,
 * the cluster CA, and file_sd target files naming every clusterd, clusteragent and etcd member.
 * Run it with `prometheus --config.file=<dir>/prometheus.yml`.
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AGENT_METRICS_PORT,
  CLUSTERD_PORT,
  type ClusterState,
  ETCD_METRICS_PORT,
  REPO,
} from './cluster.ts';

const SOURCE = join(REPO, 'deploy/prometheus');

/** Writes the directory; `scrapeInterval` (e.g. "2s") replaces the default 15s. */
export function writePrometheusDir(
  state: ClusterState,
  dir: string,
  options: { scrapeInterval?: string } = {},
): string {
  mkdirSync(join(dir, 'targets'), { recursive: true });
  let config = readFileSync(join(SOURCE, 'prometheus.yml'), 'utf8');
  if (options.scrapeInterval) {
    config = config
      .replace(/scrape_interval: \S+/, `scrape_interval: ${options.scrapeInterval}`)
      .replace(/evaluation_interval: \S+/, `evaluation_interval: ${options.scrapeInterval}`);
  }
  const file = join(dir, 'prometheus.yml');
  writeFileSync(file, config);
  copyFileSync(join(SOURCE, 'amalgam.rules.yml'), join(dir, 'amalgam.rules.yml'));
  copyFileSync(join(state.adminHome, 'pki', 'ca.crt'), join(dir, 'ca.crt'));
  const control = state.machines.filter((m) => m.role === 'control');
  const workers = state.machines.filter((m) => m.role === 'worker');
  const targets = (list: string[], labels: (i: number) => Record<string, string>) =>
    `${JSON.stringify(
      list.map((target, i) => ({ targets: [target], labels: labels(i) })),
      null,
      2,
    )}\n`;
  writeFileSync(
    join(dir, 'targets/clusterd.json'),
    targets(
      control.map((m) => `${m.ip}:${CLUSTERD_PORT}`),
      (i) => ({ machine: control[i]?.name ?? '' }),
    ),
  );
  writeFileSync(
    join(dir, 'targets/clusteragent.json'),
    targets(
      workers.map((m) => `${m.ip}:${AGENT_METRICS_PORT}`),
      (i) => ({ machine: workers[i]?.name ?? '' }),
    ),
  );
  writeFileSync(
    join(dir, 'targets/etcd.json'),
    targets(
      control.map((m) => `${m.ip}:${ETCD_METRICS_PORT}`),
      (i) => ({ machine: control[i]?.name ?? '' }),
    ),
  );
  return file;
}
