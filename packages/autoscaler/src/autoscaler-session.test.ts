import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { persistentClientId } from '@faultline/messaging';
import { FAKE_BROKER_PAIR, FakeBrokers } from '@faultline/messaging/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { createAutoscaler } from './autoscaler.js';
import { clusterConfig, FakeIaas, MemoryRegistry } from './testing/index.js';

/*
 * Issue "No fault is ever lost", item 4: the autoscaler's subscriber keeps a
 * persistent session on each broker, so what is published while it restarts
 * or while a link is down is queued for it, not acknowledged into the void.
 */
describe('createAutoscaler: the subscriber keeps its session', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('connects to both brokers with clean: false under one stable id; its publisher stays clean', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-autoscaler-'));
    dirs.push(dir);
    const brokers = new FakeBrokers();
    const credentials = { username: 'autoscaler', password: 'x' };
    const autoscaler = createAutoscaler({
      clusters: [clusterConfig()],
      iaas: new FakeIaas(),
      registry: new MemoryRegistry(),
      brokers: FAKE_BROKER_PAIR,
      credentials,
      outboxFile: path.join(dir, 'autoscaler.outbox'),
      pingIntervalMs: 50,
      resubscribeIntervalMs: 200,
      connector: brokers.connector,
    });
    await autoscaler.start();
    const deadline = Date.now() + 5_000;
    while (!Object.values(autoscaler.status().brokers).every((s) => s === 'up') && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 10));
    await autoscaler.close();
    const id = persistentClientId('autoscaler', credentials);
    const connects = brokers.connectOptions.map((c) => [c.broker, c.options.clientId, c.options.persistentSession]);
    expect(connects.filter(([, clientId]) => clientId === id)).toEqual([
      ['a', id, true],
      ['b', id, true],
    ]);
    expect(connects.filter(([, clientId]) => clientId === 'autoscaler-pub')).toEqual([
      ['a', 'autoscaler-pub', undefined],
    ]);
  });
});
