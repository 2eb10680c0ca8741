import type { TestSpNode } from '@faultline/test-support';
import { describe, expect, it } from 'vitest';
import { pairSuite, steady, waitFor } from './client.js';

/*
 * Issue "Operate it": a load balancer or a Kubernetes probe routes agents to
 * the active by `/active`, which answers 200 on one node at a time, through a
 * kill -9 of the active and its return as passive. Real PostgreSQL, both
 * nodes real processes.
 */
describe('the pair behind a load balancer', () => {
  const suite = pairSuite();

  const code = async (node: TestSpNode, route: string) => {
    try {
      const response = await fetch(`http://127.0.0.1:${node.statusPort}${route}`, {
        signal: AbortSignal.timeout(1_000),
      });
      return response.status;
    } catch {
      return 0; // down
    }
  };
  const routes = async (node: TestSpNode) => ({
    health: await code(node, '/health'),
    readiness: await code(node, '/readiness'),
    active: await code(node, '/active'),
    passive: await code(node, '/passive'),
  });

  it('/active answers 200 on the active only, through a kill -9 and the old active back as passive', async () => {
    const pair = await suite.start();
    const { active, passive } = await steady(pair);
    expect(await routes(active)).toEqual({ health: 200, readiness: 200, active: 200, passive: 503 });
    expect(await routes(passive)).toEqual({ health: 200, readiness: 200, active: 503, passive: 200 });
    const metrics = await (await fetch(`http://127.0.0.1:${active.statusPort}/metrics`)).text();
    expect(metrics).toContain('faultline_sp_role{role="ACTIVE"} 1\n');
    expect(metrics).toContain('faultline_sp_passive_linked 1\n');

    await active.kill('SIGKILL');
    // At most one node answers 200 on /active at any poll, and the other takes over.
    await waitFor(async () => {
      const [killed, other] = [await code(active, '/active'), await code(passive, '/active')];
      expect(killed).toBe(0);
      return other === 200 ? true : undefined;
    }, 'the passive answering 200 on /active');
    await active.restart();
    await steady([passive, active]);
    await waitFor(
      async () => ((await routes(active)).readiness === 200 ? true : undefined),
      'the old active ready as passive',
    );
    expect(await routes(active)).toEqual({ health: 200, readiness: 200, active: 503, passive: 200 });
    expect(await routes(passive)).toEqual({ health: 200, readiness: 200, active: 200, passive: 503 });
  });
});
