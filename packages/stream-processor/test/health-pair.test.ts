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

    // At most one node answers 200 on /active at any instant, from the kill through the old active's
    // return as passive: sampled every 50 ms throughout.
    let both = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const [a, b] = await Promise.all([code(active, '/active'), code(passive, '/active')]);
        if (a === 200 && b === 200) both += 1;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    try {
      await active.kill('SIGKILL');
      await waitFor(
        async () => ((await code(passive, '/active')) === 200 ? true : undefined),
        'the passive on /active',
      );
      await active.restart();
      await steady([passive, active]);
      await waitFor(
        async () => ((await routes(active)).readiness === 200 ? true : undefined),
        'the old active ready as passive',
      );
    } finally {
      sampling = false;
      await sampler;
    }
    expect(both).toBe(0);
    expect(await routes(active)).toEqual({ health: 200, readiness: 200, active: 503, passive: 200 });
    expect(await routes(passive)).toEqual({ health: 200, readiness: 200, active: 200, passive: 503 });
  });
});
