/**
 * One stream-processor node as a service:
 *   node packages/stream-processor/dist/main.js --node sp-1   (or FAULTLINE_SP_NODE=sp-1)
 * Ports from `streamProcessor.nodes`, timings from `streamProcessor`, the
 * cluster database from `database.url` (or DATABASE_URL).
 */

import path from 'node:path';
import { createCepEngine } from '@faultline/cep';
import { createLeasePool, PgLeaseStore } from '@faultline/coordination';
import {
  brokerCredential,
  ConfigError,
  closeAll,
  createLogger,
  createPgPool,
  type FaultlineConfig,
  loadConfig,
  migrate,
  readSecretFile,
  readTlsFiles,
  runMain,
  serviceRegistry,
} from '@faultline/core';
import { createPublisher, createSubscriber, mqttConnectorFor } from '@faultline/messaging';
import { CLIENT_IDS } from '@faultline/protocol';
import { detectionOvershoot, spMetrics } from './metrics.js';
import { createSpNode } from './node.js';
import type { QueryEngine } from './query-engine.js';
import { StatLedger } from './stat-ledger.js';
import { startStatusServer } from './status-server.js';

/** The node's own settings; throws a ConfigError (exit 2) naming the key. */
function settings(argv: string[], env: NodeJS.ProcessEnv) {
  const config: FaultlineConfig = loadConfig({ env });
  const at = argv.indexOf('--node');
  const nodeId = (at >= 0 ? argv[at + 1] : undefined) ?? env.FAULTLINE_SP_NODE;
  const spec = config.streamProcessor.nodes.find((n) => n.id === nodeId);
  const known = config.streamProcessor.nodes.map((n) => n.id).join(', ');
  if (!spec)
    throw ConfigError.forKey(
      'streamProcessor.nodes',
      nodeId ? `no node ${nodeId} (known: ${known})` : 'pass --node <id>',
    );
  const url = config.database.url;
  if (!url) throw ConfigError.forKey('database.url', 'a stream-processor node needs database.url (or DATABASE_URL)');
  // Every batch's credential is verified under it; a missing or unsafe file exits 2 naming the key.
  const memberKey = readSecretFile(path.resolve(config.security.memberKeyFile), 'security.memberKeyFile');
  // The sync link's shared secret: the peer must prove it holds the same (README "The SP pair's sync link").
  const syncKey = readSecretFile(path.resolve(config.security.syncKeyFile), 'security.syncKeyFile');
  // The bearer token of the status server's `/engine` (README "Control and status endpoints").
  const statusToken = readSecretFile(path.resolve(config.security.statusTokenFile), 'security.statusTokenFile');
  // Its broker account: the password, else its passwordFile (`faultline stack up` generates one).
  const credentials = brokerCredential(config, 'sp');
  // tls.thrift / tls.mqtt (README "TLS"): absent, plain TCP; a missing file exits here, never falls back.
  const thriftTls = readTlsFiles(config.tls.thrift, 'tls.thrift');
  const mqttTls = readTlsFiles(config.tls.mqtt, 'tls.mqtt');
  return { config, spec, url, memberKey, syncKey, statusToken, credentials, thriftTls, mqttTls };
}

let resolved: ReturnType<typeof settings> | undefined;
/** The settings, read once: runMain asks for them first to build the logger, then to start. */
const resolvedSettings = () => {
  resolved ??= settings(process.argv.slice(2), process.env);
  return resolved;
};

await runMain(
  () => {
    const { config, spec } = resolvedSettings();
    return createLogger({ service: spec.id, ...config.logging });
  },
  async ({ logger }) => {
    const { config, spec, url, memberKey, syncKey, statusToken, credentials, thriftTls, mqttTls } = resolvedSettings();
    const connector = mqttConnectorFor(mqttTls && { ca: mqttTls.ca });
    const sp = config.streamProcessor;
    const pool = createPgPool({ connectionString: url, logger });
    await migrate(pool, { logger });
    // The lease store's own pool, open and sized so a renewal waits for nothing but latency (createLeasePool).
    // Four more: the acquire, the node heartbeat, the peer watch, a sync hello.
    const leasePool = createLeasePool({ connectionString: url, ...sp, extra: 4, logger });
    await leasePool.warm();
    const brokers = config.brokers.nodes.map((n) => ({ name: n.name, host: n.host, port: n.port }));
    const { messaging, cep } = config;
    const timings = {
      pingIntervalMs: messaging.pingIntervalMs,
      resubscribeIntervalMs: messaging.resubscribeIntervalMs,
      maxMessageBytes: messaging.maxMessageBytes,
    };
    const metrics = serviceRegistry();
    // The CEP monitor publishes through the durable outbox, and only once the
    // autoscaler (its critical consumer) is subscribed on that broker.
    const useCep = sp.engine === 'cep';
    const publisher = useCep
      ? createPublisher({
          brokers,
          credentials,
          clientId: spec.id,
          outboxFile: path.join(messaging.outboxDir, `${spec.id}.outbox`),
          republishIntervalMs: messaging.republishIntervalMs,
          awaitSubscribers: [CLIENT_IDS.autoscaler],
          // An envelope the subscribers would drop is refused at publish, counted and logged.
          maxMessageBytes: messaging.maxMessageBytes,
          // Summaries are coalesced per stream and bounded; MemberFaults are never dropped.
          outboxMaxBytes: messaging.outboxMaxBytes,
          connector,
          logger,
        })
      : undefined;
    const engine: QueryEngine = useCep
      ? createCepEngine({
          source: spec.id,
          faultTimeoutMs: cep.faultTimeoutMs,
          windowMs: cep.windowMs,
          summaryIntervalMs: cep.summaryIntervalMs,
          graceAfterTakeoverMs: cep.graceAfterTakeoverMs,
          passiveTickWaitMs: cep.passiveTickWaitMs,
          // Member summaries are cut into parts within the subscribers' limit.
          maxMessageBytes: messaging.maxMessageBytes,
          onFaultDeclared: detectionOvershoot(metrics),
          logger,
        })
      : new StatLedger();
    // Both nodes follow the topology, so the passive forgets removed members too.
    const topology = useCep
      ? createSubscriber({
          brokers,
          credentials,
          role: 'sp',
          clientId: `${spec.id}-topology`,
          topics: ['topology/#'],
          onEnvelope: (envelope) => {
            if (envelope.type === 'MemberTerminatedEvent') engine.forget?.(envelope.data.memberId);
          },
          ...timings,
          connector,
          logger,
        })
      : undefined;
    await publisher?.start();
    topology?.start();
    const node = createSpNode({
      nodeId: spec.id,
      groupId: sp.groupId,
      store: new PgLeaseStore(leasePool),
      thrift: { host: spec.host, port: spec.thriftPort },
      sync: { host: spec.host, port: spec.syncPort },
      heartbeatIntervalMs: sp.heartbeatIntervalMs,
      heartbeatMaxRetry: sp.heartbeatMaxRetry,
      fencingMarginMs: sp.fencingMarginMs,
      maxFrameBytes: sp.maxFrameBytes,
      memberKey,
      syncKey,
      statTimestampWindowMs: sp.statTimestampWindowMs,
      thriftMaxConnections: sp.thriftMaxConnections,
      thriftMaxConnectionsPerPeer: sp.thriftMaxConnectionsPerPeer,
      thriftIdleTimeoutMs: sp.thriftIdleTimeoutMs,
      ...(thriftTls ? { thriftTls: { cert: thriftTls.cert, key: thriftTls.key } } : {}),
      engine,
      sink: publisher,
      logger,
    });
    await node.start();
    spMetrics(metrics, node, { publisher, subscriber: topology });
    const status = await startStatusServer(node, {
      host: spec.statusHost,
      port: spec.statusPort,
      engineToken: statusToken,
      metrics,
      logger,
    });
    logger.info('status server listening', {
      event: 'sp.status_server_listening',
      host: spec.statusHost,
      port: status.port,
      engine: sp.engine,
    });
    return {
      close: () =>
        closeAll(
          [{ close: () => pool.end() }, { close: () => leasePool.end() }, publisher, topology, node, status],
          logger,
        ),
    };
  },
);
