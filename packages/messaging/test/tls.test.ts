import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type BrokerNode, createBrokerNode, writeMosquittoConfig } from '@faultline/broker';
import { CLIENT_IDS, SERVICE_ROLES } from '@faultline/protocol';
import { freePort, makeTestCertificates, mosquittoAvailable, TEST_CREDENTIALS } from '@faultline/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type BrokerEndpoint,
  createPublisher,
  createSubscriber,
  mqttConnector,
  mqttTlsConnector,
} from '../src/index.js';
import { numberedFault } from '../src/testing/index.js';
import { credentials, waitFor } from './helpers.js';

/*
 * README "TLS": brokers with `tls.mqtt` speak mqtts only, and every client
 * verifies the broker's certificate against the CA. Two aedes nodes and a
 * Mosquitto broker, each with a certificate from a CA the test makes.
 */
const certs = makeTestCertificates('mqtt');
const stranger = makeTestCertificates('stranger');
const users = SERVICE_ROLES.map((role) => ({ ...TEST_CREDENTIALS[role], role }));
const FAST = { pingIntervalMs: 200, resubscribeIntervalMs: 500 };

describe('MQTT over TLS', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn().catch(() => {});
  });

  const aedesNode = async (name: string): Promise<BrokerNode> => {
    const node = await createBrokerNode({ name, users, tls: { cert: certs.cert, key: certs.key } });
    cleanups.push(() => node.close());
    return node;
  };

  const mosquitto = async (): Promise<BrokerEndpoint> => {
    const port = await freePort();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fl-mosq-tls-'));
    const { configFile } = await writeMosquittoConfig({
      dir,
      name: 'm',
      port,
      users,
      tls: { certFile: certs.certFile, keyFile: certs.keyFile, caFile: certs.caFile },
    });
    const child: ChildProcess = spawn('/usr/sbin/mosquitto', ['-c', configFile], { stdio: 'ignore' });
    cleanups.push(async () => {
      child.kill('SIGKILL');
    });
    return { name: 'm', host: '127.0.0.1', port };
  };

  /** A subscriber and a publisher through `brokers`, both over TLS; resolves when one fault went through. */
  async function roundTrip(brokers: BrokerEndpoint[]): Promise<void> {
    const connector = mqttTlsConnector({ ca: certs.ca });
    const ids: string[] = [];
    const sub = createSubscriber({
      brokers,
      credentials: credentials('autoscaler'),
      role: 'autoscaler',
      clientId: CLIENT_IDS.autoscaler,
      topics: ['summarized-health-stats/#'],
      onEnvelope: (envelope) => void ids.push(envelope.id),
      connector,
      ...FAST,
    });
    cleanups.push(() => sub.close());
    sub.start();
    await waitFor(() => Object.values(sub.links()).every((state) => state === 'up'), 'subscriber up', 10_000);
    const publisher = createPublisher({
      brokers,
      credentials: credentials('sp'),
      clientId: 'sp-1',
      outboxFile: path.join(mkdtempSync(path.join(os.tmpdir(), 'fl-msg-tls-')), 'sp-1.outbox'),
      awaitSubscribers: [CLIENT_IDS.autoscaler],
      connector,
    });
    cleanups.push(() => publisher.close());
    await publisher.start();
    await publisher.publish(numberedFault(1));
    await waitFor(() => ids.length >= 1, 'the fault at the subscriber', 10_000);
    expect(ids).toEqual([numberedFault(1).id]);
  }

  it('an aedes pair: publisher and subscriber that verify the CA', async () => {
    const [a, b] = [await aedesNode('a'), await aedesNode('b')];
    await roundTrip([
      { name: 'a', host: '127.0.0.1', port: a.port },
      { name: 'b', host: '127.0.0.1', port: b.port },
    ]);
  });

  it('a client that trusts another CA, or speaks plain MQTT, is not connected', async () => {
    const node = await aedesNode('a');
    const endpoint = { name: 'a', host: '127.0.0.1', port: node.port };
    const options = { clientId: 'sp-1', credentials: TEST_CREDENTIALS.sp };
    await expect(mqttTlsConnector({ ca: stranger.ca })(endpoint, options)).rejects.toThrow(/certificate/i);
    const plain = await Promise.race([
      mqttConnector(endpoint, options).then(
        (connection) => {
          connection.close();
          return 'connected';
        },
        () => 'refused',
      ),
      new Promise((resolve) => setTimeout(() => resolve('no answer'), 1_500)),
    ]);
    expect(plain).not.toBe('connected');
    expect(node.connectedClients()).toBe(0);
  });

  it.runIf(mosquittoAvailable())('a Mosquitto broker with certfile, keyfile and cafile', async () => {
    const endpoint = await mosquitto();
    // Mosquitto needs a moment to listen: the subscriber retries until it is up.
    await roundTrip([endpoint]);
  });
});
