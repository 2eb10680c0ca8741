import { describe, expect, it } from 'vitest';
import { derivedCounter, derivedGauge, oncePerTurn, serviceRegistry } from './metrics.js';

describe('metrics read at scrape time', () => {
  it('read the status once per scrape, and afresh at the next', async () => {
    let reads = 0;
    let value = 1;
    const status = oncePerTurn(() => {
      reads += 1;
      return { value };
    });
    const register = serviceRegistry();
    derivedGauge(register, 'test_a', 'a', () => status().value);
    derivedGauge(register, 'test_b', 'b', () => status().value * 2);
    derivedCounter(register, 'test_c_total', 'c', () => status().value * 3);
    const first = await register.getSingleMetricAsString('test_a');
    expect(first).toContain('test_a 1');
    const text = await register.metrics();
    expect(text).toContain('test_b 2');
    expect(text).toContain('test_c_total 3');
    const before = reads;
    value = 5;
    await new Promise((resolve) => setImmediate(resolve));
    expect(await register.metrics()).toContain('test_a 5');
    // One read a scrape, whatever the number of metrics that read it.
    expect(reads).toBeLessThanOrEqual(before + 1);
  });

  it('refuses a counter whose name does not end in _total, and a gauge with no value has no series', async () => {
    const register = serviceRegistry();
    expect(() => derivedCounter(register, 'test_count', 'c', () => 1)).toThrow(/_total/);
    derivedGauge(register, 'test_epoch', 'e', () => undefined, ['node']);
    expect(await register.metrics()).not.toMatch(/^test_epoch\{/m);
  });
});
