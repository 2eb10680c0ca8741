import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/*
 * Issue "Operate it": the alerting rules in infra/monitoring pass Prometheus's
 * own checker, and promtool's unit tests of them (alerts.test.yml: each alert
 * fires on the series that should fire it, not on those that should not).
 * The end-to-end test (test/e2e/prometheus.test.ts) scrapes a running stack
 * with them.
 */
const MONITORING = path.join(import.meta.dirname, '../../infra/monitoring');
const hasPromtool = spawnSync('promtool', ['--version']).error === undefined;

describe.skipIf(!hasPromtool && !process.env.CI)('the alerting rules', () => {
  const promtool = (...args: string[]) => spawnSync('promtool', args, { cwd: MONITORING, encoding: 'utf8' });

  it('pass promtool check rules', () => {
    const result = promtool('check', 'rules', 'alerts.yml');
    expect(result.stdout + result.stderr).toContain('SUCCESS: 8 rules found');
    expect(result.status).toBe(0);
  });

  it("pass promtool's unit tests of every alert", () => {
    const result = promtool('test', 'rules', 'alerts.test.yml');
    expect(result.stdout + result.stderr).toContain('SUCCESS');
    expect(result.status).toBe(0);
  });

  it('every alert has a test, a severity, a summary and a description', () => {
    const rules = readFileSync(path.join(MONITORING, 'alerts.yml'), 'utf8');
    const tests = readFileSync(path.join(MONITORING, 'alerts.test.yml'), 'utf8');
    const alerts = [...rules.matchAll(/- alert: (\S+)/g)].map((m) => m[1]);
    expect(alerts.length).toBe(8);
    for (const alert of alerts) expect(tests).toContain(`alertname: ${alert}`);
    expect([...rules.matchAll(/severity: (critical|warning)/g)].length).toBe(alerts.length);
    expect([...rules.matchAll(/summary: /g)].length).toBe(alerts.length);
    expect([...rules.matchAll(/description: /g)].length).toBe(alerts.length);
  });
});

describe('the Grafana dashboard', () => {
  it('is a dashboard whose every panel queries Prometheus through its datasource variable', () => {
    const dashboard = JSON.parse(readFileSync(path.join(MONITORING, 'grafana-dashboard.json'), 'utf8')) as {
      uid: string;
      templating: { list: { name: string; type: string }[] };
      panels: { id: number; title: string; targets: { expr: string; datasource: { uid: string } }[] }[];
    };
    expect(dashboard.uid).toBe('faultline');
    expect(dashboard.templating.list).toContainEqual(
      expect.objectContaining({ name: 'datasource', type: 'datasource' }),
    );
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    for (const panel of dashboard.panels) {
      expect(panel.targets.length).toBeGreaterThan(0);
      for (const target of panel.targets) {
        // Grafana's variable, written as the dashboard holds it.
        expect(target.datasource.uid).toBe(['$', '{datasource}'].join(''));
        expect(target.expr).toMatch(/faultline_|process_|nodejs_/);
      }
    }
  });
});
