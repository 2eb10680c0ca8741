import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createBrokerNode } from '@faultline/broker';
import { createWorkload } from '@faultline/cloud-controller';
import { REPO_ROOT } from '@faultline/core';
import { createSubscriber, mqttTlsConnector } from '@faultline/messaging';
import {
  connectHealthStat,
  type Envelope,
  fromAckWire,
  type HealthStat,
  issueMemberCredential,
  SERVICE_ROLES,
  toBatchWire,
} from '@faultline/protocol';
import { signedBatch, testMember } from '@faultline/protocol/testing';
import {
  makeTestCertificates,
  type SpStatusJson,
  startPostgres,
  startSpPair,
  TEST_CREDENTIALS,
  type TestPostgres,
  type TestSpNode,
  testSecret,
  waitFor,
} from '@faultline/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/*
 * Issue 12, "TLS where a user turns it on" (README "TLS"): a real SP pair
 * whose config names `tls.thrift` certificate files. An agent that verifies
 * the server against the CA has its signed batch acknowledged and replicated;
 * a client that trusts another CA refuses the server (its handshake fails and
 * the node counts it), a plain TCP client gets no answer; the node stays ACTIVE.
 */
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const statOf = (memberId: string): HealthStat => ({
  clusterId: 'php',
  clusterInstanceId: 'php-1',
  networkPartitionId: 'np-1',
  partitionId: 'p-1',
  memberId,
  healthDescription: 'load_average',
  value: 1,
  timestamp: Date.now(),
});

describe('the SP pair over TLS (tls.thrift)', () => {
  const certs = makeTestCertificates('sp');
  const stranger = makeTestCertificates('stranger');
  let db: TestPostgres;
  let pair: [TestSpNode, TestSpNode];
  let active: TestSpNode;
  let key: Buffer;

  const status = async (): Promise<SpStatusJson> => {
    const s = await active.status();
    if (!s) throw new Error('the active does not answer');
    return s;
  };

  beforeAll(async () => {
    db = await startPostgres();
    pair = await startSpPair({
      databaseUrl: db.connectionString,
      tls: { thrift: { certFile: certs.certFile, keyFile: certs.keyFile, caFile: certs.caFile } },
    });
    active = await waitFor(async () => {
      const s = await Promise.all(pair.map((n) => n.status()));
      const i = s.findIndex((x) => x?.role === 'ACTIVE');
      return i >= 0 && s[1 - i]?.following?.epoch === s[i]?.epoch ? (pair[i] as TestSpNode) : undefined;
    }, 'a steady pair');
    key = testSecret(active.security.memberKeyFile);
  }, 90_000);

  afterAll(async () => {
    await Promise.all((pair ?? []).map((n) => n.stop()));
    await db?.stop();
  });

  it('acknowledges and replicates a signed batch from an agent that verifies the CA', async () => {
    const agent = connectHealthStat('127.0.0.1', active.thriftPort, { tls: { ca: certs.ca } });
    try {
      await agent.ready;
      const ack = fromAckWire(
        await agent.client.publish(
          toBatchWire(signedBatch(key, { agentId: 'php-1-a', sequence: 1, stats: [statOf('php-1-a')] })),
        ),
      );
      expect(ack).toMatchObject({ agentId: 'php-1-a', sequence: 1, duplicate: false, replicated: true });
    } finally {
      agent.close();
    }
  });

  it('a client that does not trust the CA refuses the server; the node counts the failed handshake (rate-limited log)', async () => {
    const before = await status();
    const client = connectHealthStat('127.0.0.1', active.thriftPort, { tls: { ca: stranger.ca } });
    await expect(client.ready).rejects.toThrow(/certificate/i);
    client.close();
    await waitFor(
      async () => ((await status()).counters.tlsHandshakeFailures ?? 0) > (before.counters.tlsHandshakeFailures ?? 0),
      'the failed handshake counted',
    );
    expect((await status()).counters.badFrames).toBe(before.counters.badFrames);
    expect((await status()).role).toBe('ACTIVE');
  });

  it('a plain TCP client gets no answer from the TLS port', async () => {
    const plain = connectHealthStat('127.0.0.1', active.thriftPort, { connectTimeoutMs: 2_000 });
    await plain.ready.catch(() => {});
    const outcome = await Promise.race([
      plain.client
        .publish(toBatchWire(signedBatch(key, { agentId: 'php-1-b', sequence: 1, stats: [statOf('php-1-b')] })))
        .then(
          () => 'acknowledged',
          () => 'refused',
        ),
      sleep(3_000).then(() => 'no answer'),
    ]);
    plain.close();
    expect(outcome).not.toBe('acknowledged');
    expect((await status()).role).toBe('ACTIVE');
  });
  it('a real cartridge agent reports over TLS: stats to the SP, its status to an aedes broker with mqtts', async () => {
    const mqttCerts = makeTestCertificates('mqtt');
    const users = SERVICE_ROLES.map((role) => ({ ...TEST_CREDENTIALS[role], role }));
    const broker = await createBrokerNode({
      name: 'a',
      users,
      // Members log in as themselves, checked with the pair's member key.
      memberKey: key,
      tls: { cert: mqttCerts.cert, key: mqttCerts.key },
    });
    const workload = createWorkload({ latencyMs: 5 });
    const workloadPort = await workload.listen(0, '127.0.0.1');
    const statuses: Envelope[] = [];
    const subscriber = createSubscriber({
      brokers: [{ name: 'a', host: '127.0.0.1', port: broker.port }],
      credentials: TEST_CREDENTIALS.autoscaler,
      role: 'autoscaler',
      clientId: 'autoscaler',
      topics: ['instance/status/#'],
      onEnvelope: (envelope) => void statuses.push(envelope),
      connector: mqttTlsConnector({ ca: mqttCerts.ca }),
      pingIntervalMs: 200,
      resubscribeIntervalMs: 500,
    });
    subscriber.start();
    const member = testMember('php-tls-1');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fl-tls-agent-'));
    const agent = spawn(process.execPath, [path.join(REPO_ROOT, 'packages/cartridge-agent/dist/main.js')], {
      env: {
        PATH: process.env.PATH,
        FAULTLINE_MEMBER_ID: member.memberId,
        FAULTLINE_CLUSTER_ID: member.clusterId,
        FAULTLINE_CLUSTER_INSTANCE_ID: member.clusterInstanceId,
        FAULTLINE_NETWORK_PARTITION_ID: member.networkPartitionId,
        FAULTLINE_PARTITION_ID: member.partitionId,
        FAULTLINE_MEMBER_CREDENTIAL: issueMemberCredential(key, member),
        FAULTLINE_SP_ENDPOINTS: pair.map((node) => `127.0.0.1:${node.thriftPort}`).join(','),
        FAULTLINE_BROKERS: `a@127.0.0.1:${broker.port}`,
        FAULTLINE_TLS_THRIFT_CA_FILE: certs.caFile,
        FAULTLINE_TLS_MQTT_CA_FILE: mqttCerts.caFile,
        FAULTLINE_WORKLOAD_PORT: String(workloadPort),
        FAULTLINE_OUTBOX_DIR: path.join(dir, 'outbox'),
        FAULTLINE_LOGGING_DIR: dir,
        FAULTLINE_AGENT_STAT_INTERVAL_MS: '200',
        FAULTLINE_AGENT_ACTIVATION_POLL_MS: '100',
      },
      stdio: 'ignore',
    });
    try {
      const before = await status();
      await waitFor(
        async () => ((await status()).counters.batchesAccepted ?? 0) >= (before.counters.batchesAccepted ?? 0) + 3,
        'three batches of the agent accepted over TLS',
      );
      await waitFor(
        () => statuses.some((e) => e.type === 'InstanceActivatedEvent' && e.data.memberId === member.memberId),
        "the agent's InstanceActivatedEvent over mqtts",
      );
      const after = await status();
      expect(after.role).toBe('ACTIVE');
      expect(after.refusals).toEqual(before.refusals);
    } finally {
      agent.kill('SIGKILL');
      await subscriber.close();
      await workload.close();
      await broker.close();
    }
  }, 60_000);
});
