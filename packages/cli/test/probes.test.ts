import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, mosquittoAvailable, startBroker } from '@faultline/test-support';
import { describe, expect, it } from 'vitest';
import { mqttAnswers, portAnswers } from '../src/probes.js';

const KINDS = mosquittoAvailable() ? (['aedes', 'mosquitto'] as const) : (['aedes'] as const);

/*
 * The supervisor's liveness probe of a broker: an MQTT CONNECT must be
 * answered, so a broker that is stopped (whose kernel still completes the TCP
 * handshake) fails it where a TCP connect would pass.
 */
describe.each(KINDS)('mqttAnswers (%s)', (kind) => {
  it('is answered by a running broker, not by a stopped one whose port still accepts', async () => {
    const logDir = mkdtempSync(path.join(os.tmpdir(), 'faultline-probe-'));
    const broker = await startBroker({ kind, logDir, logLevel: 'info' });
    try {
      expect(await mqttAnswers(broker.host, broker.port, AbortSignal.timeout(2_000))).toBe(true);
      process.kill(broker.pid as number, 'SIGSTOP');
      expect(await portAnswers(broker.host, broker.port, AbortSignal.timeout(1_000))).toBe(true);
      expect(await mqttAnswers(broker.host, broker.port, AbortSignal.timeout(1_000))).toBe(false);
      process.kill(broker.pid as number, 'SIGCONT');
      expect(await mqttAnswers(broker.host, broker.port, AbortSignal.timeout(2_000))).toBe(true);
    } finally {
      await broker.stop();
    }
    if (kind === 'aedes') {
      // Answered before any authentication: no refusal logged for it.
      const logs = existsSync(logDir) ? readdirSync(logDir).map((f) => readFileSync(path.join(logDir, f), 'utf8')) : [];
      expect(logs.join('\n')).not.toContain('broker.connect_refused');
    }
  });
});

describe('mqttAnswers', () => {
  it('is false for a port nobody listens on', async () => {
    expect(await mqttAnswers('127.0.0.1', await freePort(), AbortSignal.timeout(1_000))).toBe(false);
  });
});
