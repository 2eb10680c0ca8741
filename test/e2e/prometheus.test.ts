import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '@faultline/core';
import { freePort } from '@faultline/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processesOf, stackConfig, stackDir, stackPorts, stackProbe, startStack } from './harness.js';

/*
 * Issue "Operate it": a real Prometheus (the Debian package) scrapes a running
 * stack with the repository's alerting rules (infra/monitoring/alerts.yml):
 * every series the rules and the Grafana dashboard read exists, every panel
 * of the dashboard has data, and "no active SP" fires once both SP nodes are
 * stopped (killed, their restart 30 s away).
 */
const MONITORING = path.join(REPO_ROOT, 'infra/monitoring');
const hasPrometheus = spawnSync('prometheus', ['--version']).error === undefined;

describe.skipIf(!hasPrometheus && !process.env.CI)('Prometheus scraping the stack', () => {
  let dir: string;
  let stack: ChildProcess;
  let prometheus: ChildProcess | undefined;
  let prometheusDir: string;
  let prometheusLog = '';
  let api: string;
  let ports: number[];
  let brokerHealth: number[] = [];
  const p = (i: number) => ports[i] as number;
  const probe = stackProbe(() => dir);
  const { cli, waitFor, threeActive } = probe;

  /** An instant query through Prometheus's HTTP API. */
  const query = async (expr: string) => {
    const response = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await response.json()) as {
      status: string;
      error?: string;
      data: { result: { metric: Record<string, string>; value: [number, string] }[] };
    };
    if (body.status !== 'success') throw new Error(`${expr}: ${body.error}`);
    return body.data.result;
  };
  const alerts = async () => {
    const body = (await (await fetch(`${api}/api/v1/alerts`)).json()) as {
      data: { alerts: { labels: { alertname: string }; state: string }[] };
    };
    return body.data.alerts;
  };

  beforeAll(async () => {
    dir = stackDir('faultline-e2e-prometheus-');
    ports = await stackPorts();
    // The brokers' health ports too; a killed SP node comes back only after 30 s: long enough to see the alert fire.
    brokerHealth = [await freePort(), await freePort()];
    const config = stackConfig('aedes', ports, {
      brokers: {
        kind: 'aedes',
        nodes: [
          { name: 'a', port: p(1), healthPort: brokerHealth[0] },
          { name: 'b', port: p(2), healthPort: brokerHealth[1] },
        ],
      },
      supervisor: { restartInitialMs: 30_000, restartMaxMs: 30_000 },
    });
    ({ child: stack } = await startStack(dir, config, probe, { detached: true }));
    await threeActive();

    prometheusDir = mkdtempSync(path.join(os.tmpdir(), 'faultline-prometheus-'));
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    const targets = [p(5), p(8), p(9), p(10), ...brokerHealth].map((t) => `'127.0.0.1:${t}'`).join(', ');
    writeFileSync(
      path.join(prometheusDir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 1s, scrape_timeout: 900ms, evaluation_interval: 1s }',
        `rule_files: ['${path.join(MONITORING, 'alerts.yml')}']`,
        'scrape_configs:',
        '  - job_name: faultline',
        `    static_configs: [{ targets: [${targets}] }]`,
        '',
      ].join('\n'),
    );
    prometheus = spawn(
      'prometheus',
      [
        `--config.file=${path.join(prometheusDir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${path.join(prometheusDir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    for (const stream of [prometheus.stdout, prometheus.stderr])
      stream?.on('data', (chunk: Buffer) => {
        prometheusLog = (prometheusLog + chunk.toString()).slice(-5_000);
      });
    await waitFor(
      async () => {
        if (prometheus?.exitCode !== null) throw new Error(`prometheus exited:\n${prometheusLog}`);
        const up = await query('up{job="faultline"} == 1').catch(() => []);
        return up.length === 6 ? true : undefined;
      },
      'Prometheus scraping the six services',
      60_000,
    );
  });

  afterAll(async () => {
    prometheus?.kill('SIGTERM');
    if (stack && stack.exitCode === null && stack.signalCode === null) {
      stack.kill('SIGTERM');
      await new Promise((resolve) => stack.once('exit', resolve));
    }
    if (dir) for (const { pid } of processesOf(dir, [dir])) process.kill(pid, 'SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (prometheusDir) rmSync(prometheusDir, { recursive: true, force: true });
  });

  it('finds every series the rules read, and data in every panel of the dashboard', async () => {
    const rules = readFileSync(path.join(MONITORING, 'alerts.yml'), 'utf8');
    const dashboard = JSON.parse(readFileSync(path.join(MONITORING, 'grafana-dashboard.json'), 'utf8')) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    const names = new Set(
      [...`${rules}\n${JSON.stringify(dashboard)}`.matchAll(/\b((?:faultline|process|nodejs)_[a-z0-9_]+)\b/g)].map(
        (m) => m[1] as string,
      ),
    );
    // Some series need a few scrapes (rates) or a term's first actions: retried until all are there.
    const missing = async () => {
      const gone: string[] = [];
      for (const name of names) if ((await query(`count(${name})`)).length === 0) gone.push(name);
      for (const panel of dashboard.panels)
        for (const target of panel.targets)
          if ((await query(target.expr)).length === 0) gone.push(`panel "${panel.title}": ${target.expr}`);
      return gone;
    };
    let last: string[] = [];
    await waitFor(
      async () => {
        last = await missing();
        return last.length === 0 ? true : undefined;
      },
      'every series',
      30_000,
    ).catch(() => {
      throw new Error(`no data for:\n${last.join('\n')}`);
    });
    // The rules' and the dashboard's names were found (a regex that found none would check nothing).
    for (const name of [
      'faultline_sp_role',
      'faultline_sp_detection_overshoot_seconds_bucket',
      'faultline_autoscaler_members',
    ])
      expect(names).toContain(name);
    // One active SP, three active members of the cluster, both brokers up for each service.
    expect(await query('sum(faultline_sp_role{role="ACTIVE"})')).toMatchObject([{ value: [expect.any(Number), '1'] }]);
    expect(await query('faultline_autoscaler_members{cluster="web",state="Active"}')).toMatchObject([
      { value: [expect.any(Number), '3'] },
    ]);
    expect(await query('sum(faultline_broker_clients_connected) > 0')).toHaveLength(1);
    expect((await alerts()).filter((a) => a.state === 'firing')).toEqual([]);
  });

  it('fires "no active SP" once both SP nodes are stopped', async () => {
    await cli('chaos', 'kill-sp', 'passive');
    await cli('chaos', 'kill-sp', 'active');
    const stoppedAt = Date.now();
    const firing = await waitFor(
      async () => (await alerts()).find((a) => a.labels.alertname === 'FaultlineNoActiveSP' && a.state === 'firing'),
      'FaultlineNoActiveSP firing',
      28_000,
    );
    expect(firing).toBeDefined();
    // Its `for` is 10 s: not before, and within the restart delay the test gave.
    const firedAfterMs = Date.now() - stoppedAt;
    expect(firedAfterMs).toBeGreaterThanOrEqual(10_000);
    console.info(`FaultlineNoActiveSP firing ${firedAfterMs} ms after both SP nodes were killed`);
  });
});
