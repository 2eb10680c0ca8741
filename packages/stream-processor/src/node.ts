import { LeaderLease, type PreviousHolder } from '@faultline/coordination';
import { boundLoggedText, once, RateLimitedLog, type Result, type TimerHandle } from '@faultline/core';
import {
  type AnyBatch,
  BATCH_REFUSALS,
  type BatchAck,
  type BatchDecodeError,
  type BatchRefusal,
  type Envelope,
  refusalMessage,
  statCount,
  thriftGenerated,
} from '@faultline/protocol';
import { activationOf, type OwnTerm } from './activation.js';
import { BatchAdmission, type Refusal } from './batch-admission.js';
import { BatchDedupe, type DedupeRow, isDedupeRow } from './batch-dedupe.js';
import { LoopDelayWindows } from './loop-delay.js';
import { resolveSpNodeOptions, type SpNodeOptions } from './options.js';
import type { OutputSink } from './query-engine.js';
import { streamSnapshot } from './snapshot-stream.js';
import { ThriftSource } from './source.js';
import { SyncLink } from './sync-link.js';
import { SyncServer } from './sync-server.js';

export type SpRole = 'PASSIVE' | 'ACTIVE' | 'STEPPING_DOWN';

/** A passive or stepping-down node logs withheld outputs at most this often. */
const WITHHELD_WARNING_EVERY_MS = 10_000;
/**
 * The passive checks a forwarded batch's timestamps this much more loosely
 * than the active did: the batch reached it a little later, and refusing what
 * the active accepted would set the two engines apart.
 */
const PASSIVE_TIMESTAMP_SLACK_MS = 60_000;

export interface SpCounters {
  batchesAccepted: number;
  eventsAccepted: number;
  duplicates: number;
  /** Batches refused (InvalidBatch), for any reason: `refusals` has them per reason. */
  invalidBatches: number;
  refusedNotActive: number;
  /** Acknowledged without a passive holding the batch. */
  unreplicatedAcks: number;
  /** Outputs handed to the sink. */
  outputsPublished: number;
  /** Outputs withheld because the lease was not valid at that instant (self-fencing). */
  outputsFenced: number;
  /** The sink refused an output (its outbox failed). */
  outputsFailed: number;
}

export interface SpStatus {
  nodeId: string;
  groupId: string;
  role: SpRole;
  epoch: number | undefined;
  thriftPort: number | undefined;
  syncPort: number;
  /** Active: the passive it replicates to. */
  passive: { endpoint: string | undefined; link: string; lagBatches: number; lagMs: number };
  /** Passive: the active it follows. */
  following: { nodeId: string; epoch: number; lastSeq: number; synced: boolean } | undefined;
  counters: SpCounters & {
    badFrames: number;
    syncViolations: number;
    /** Sync handshakes that failed authentication, at either end (sync-auth.ts). */
    syncAuthFailures: number;
    /** Hellos of authenticated peers refused (not the lease's holder and epoch, or this node is not passive). */
    syncHellosRefused: number;
    /** Sync connections closed because too many were waiting for their handshake. */
    syncConnectionsRefused: number;
    /** Sync links this node took as passive. */
    syncLinks: number;
    syncBatchesApplied: number;
    /** Thrift connections refused at a cap (total or per peer). */
    connectionsRefused: number;
    /** Thrift connections closed for sending nothing for `thriftIdleTimeoutMs`. */
    idleConnectionsClosed: number;
  };
  /** Batches refused, per reason (on the passive: forwarded batches it would not apply). */
  refusals: Record<BatchRefusal, number>;
  /** The node's event-loop delay (ms): the max over the last 5 to 10 s, the p99 of the last whole 5 s window, and of every sample of the last 12. */
  eventLoop: { maxDelayMs: number; p99DelayMs: number; minuteP99DelayMs: number };
  engine: Record<string, unknown>;
}

export interface SpNode {
  start(): Promise<void>;
  close(): Promise<void>;
  status(): SpStatus;
  readonly role: SpRole;
  /** The engine's whole state (the status server's /engine). */
  engineState(): unknown;
  /** One member's part of it, undefined when the engine has no such export (`/engine?member=`). */
  engineMemberState(memberId: string): unknown;
  /** Members the engine's state holds, undefined when the engine does not say. */
  engineMembers(): number | undefined;
}

/**
 * What only code that builds a node itself can ask for: never a key of the
 * configuration file or a variable of the environment. `main.ts` passes none,
 * and the config schema has no such key (node-internals.test.ts holds both),
 * so a deployed SP always checks every batch.
 */
export interface SpNodeInternals {
  /**
   * Skips the per-batch trust checks (BatchAdmission: credential, agent id,
   * member, timestamps, value bounds) on both roles, so any peer could report
   * for any member. Only for the same-run baseline of the ingest benchmark
   * (test/bench/ingest.bench.mjs), which measures what those checks cost;
   * validation and the dedupe window still apply. Logged as a warning at start.
   */
  unsafeSkipAdmission?: boolean;
}

/**
 * One stream-processor node of the active/passive pair (README, "Stream
 * processor: the active/passive pair"): it heartbeats into the cluster
 * database; while it holds the lease it opens the Thrift source, applies
 * every batch to its engine, forwards it to the passive and acknowledges the
 * agent once the passive holds it; otherwise it follows the active as a hot
 * standby. Every transition is logged with the epoch.
 */
export function createSpNode(input: SpNodeOptions, internals: SpNodeInternals = {}): SpNode {
  const options = resolveSpNodeOptions(input);
  const { clock, engine, groupId, heartbeatIntervalMs, maxFrameBytes } = options;
  const log = options.logger.child({ nodeId: options.nodeId });
  const dedupe = new BatchDedupe();
  const admission = new BatchAdmission({
    memberKey: options.memberKey,
    clock,
    timestampWindowMs: options.statTimestampWindowMs,
  });
  const skipAdmission = internals.unsafeSkipAdmission === true;
  if (skipAdmission)
    log.warn('batch admission checks skipped: a benchmark baseline, never a deployment', {
      event: 'sp.admission_skipped',
    });
  /** The admission's answer for a validated batch; `slackMs` widens the timestamp window (the passive). */
  const admit = (batch: AnyBatch, slackMs?: number): Refusal | undefined =>
    skipAdmission ? undefined : admission.check(batch, slackMs);
  const peerLog = new RateLimitedLog(log, clock);
  const refusals = Object.fromEntries(BATCH_REFUSALS.map((reason) => [reason, 0])) as Record<BatchRefusal, number>;
  const counters: SpCounters = {
    batchesAccepted: 0,
    eventsAccepted: 0,
    duplicates: 0,
    invalidBatches: 0,
    refusedNotActive: 0,
    unreplicatedAcks: 0,
    outputsPublished: 0,
    outputsFenced: 0,
    outputsFailed: 0,
  };
  let role: SpRole = 'PASSIVE';
  /** This node's last term as active: what tells a lease taken back from a takeover (activation.ts). */
  let ownTerm: OwnTerm | undefined;
  let syncPort = options.sync.port;
  let peerWatch: TimerHandle | undefined;

  const link = new SyncLink({
    nodeId: options.nodeId,
    maxFrameBytes,
    key: options.syncKey,
    ackTimeoutMs: options.syncAckTimeoutMs,
    handshakeTimeoutMs: options.syncHandshakeTimeoutMs,
    clock,
    logger: log,
    snapshot: () => streamSnapshot(engine, dedupe),
  });
  const syncServer = new SyncServer({
    nodeId: options.nodeId,
    host: options.sync.host,
    port: options.sync.port,
    maxFrameBytes,
    key: options.syncKey,
    handshakeTimeoutMs: options.syncHandshakeTimeoutMs,
    maxPendingConnections: options.syncMaxPendingConnections,
    clock,
    logger: log,
    accepting: () => role === 'PASSIVE',
    // A hello must name the lease holder and epoch the database has now: a forged epoch pins nothing.
    leaseHolder: () => options.store.leader(groupId, lease.lengthMs),
    onSnapshot: (snapshot) => {
      if (ownTerm) ownTerm.replaced = true;
      engine.importState(snapshot.engine);
      dedupe.import(snapshot.dedupe);
    },
    onSnapshotBegin: (begin) => {
      if (ownTerm) ownTerm.replaced = true;
      engine.importBegin(begin.engine);
      dedupe.beginImport();
    },
    onSnapshotChunk: (chunk) => {
      // Checked whole before any of it applies: a bad row in the dedupe part leaves the engine part unapplied too.
      const rows = chunk.dedupe ?? [];
      rows.forEach((row, i) => {
        if (!isDedupeRow(row, dedupe.maxGap))
          throw new Error(`dedupe[${i}] is not [agentId, floor, [sequences above]]`);
      });
      if (chunk.engine !== undefined) engine.importChunk(chunk.engine);
      for (const row of rows as DedupeRow[]) dedupe.importOne(row);
    },
    onSnapshotEnd: () => {
      engine.importEnd();
      dedupe.endImport();
    },
    onBatch: (batch) => {
      // The same rules as the active's: a batch the active should not have taken is not applied here either.
      const refusal = admit(batch, PASSIVE_TIMESTAMP_SLACK_MS);
      if (refusal) {
        refused(refusal.reason, refusal.detail, 'sync', batch.agentId);
        return;
      }
      const outcome = dedupe.add(batch.agentId, batch.sequence);
      if (outcome === 'added') engine.apply(batch);
      else if (outcome === 'out_of_window')
        refused('sequence_out_of_window', sequenceDetail(batch), 'sync', batch.agentId);
    },
    onPublished: (ids) => {
      engine.confirm?.(ids);
    },
  });

  // The engine emits only while activated; this is the last gate before the
  // outside world: no output leaves unless the lease is valid at this very
  // instant (a process that woke from a pause is fenced here, synchronously).
  let lastWithheldWarning: number | undefined;
  let withheldSinceWarning = 0;
  engine.onOutput?.((envelope) => {
    if (role !== 'ACTIVE' || lease.epoch === undefined || !options.sink) {
      counters.outputsFenced += 1;
      // A tick's worth can be withheld at once: one line per 10 s, with the count since the last.
      withheldSinceWarning += 1;
      const now = clock.monotonicNow();
      if (lastWithheldWarning === undefined || now - lastWithheldWarning >= WITHHELD_WARNING_EVERY_MS) {
        log.warn('output withheld: not the active', {
          event: 'sp.output_withheld',
          id: envelope.id,
          type: envelope.type,
          withheld: withheldSinceWarning,
          outputsFenced: counters.outputsFenced,
        });
        lastWithheldWarning = now;
        withheldSinceWarning = 0;
      }
      return;
    }
    counters.outputsPublished += 1;
    publishOutput(options.sink, envelope);
  });
  /**
   * The passive drops an output only once a broker has it (PUBACK): durable
   * in this node's outbox is not enough, the outbox dies with this node. The
   * callbacks keep the envelope's id and type, not the envelope: a summary
   * part lists 1 000 members, and a tick's parts waiting for their acks
   * (seconds, at 100 000 members) were promoted to the old generation whole.
   */
  const publishOutput = (sink: OutputSink, envelope: Envelope): void => {
    const { id, type } = envelope;
    sink.publish(envelope, { onAcked: () => link.confirm([id]) }).then(
      () => {},
      (error: unknown) => {
        counters.outputsFailed += 1;
        log.error('output could not be published', { event: 'sp.output_publish_failed', id, type, error });
      },
    );
  };

  /** Counts and logs (per peer and reason, rate-limited) a refusal; the InvalidBatch to answer with. */
  function refused(reason: BatchRefusal, detail: string, peer: string | undefined, agentId?: string): Error {
    counters.invalidBatches += 1;
    refusals[reason] += 1;
    const message = refusalMessage(reason, detail);
    peerLog.warn(peer, reason, 'batch refused', {
      event: 'sp.batch_refused',
      reason,
      agentId: agentId === undefined ? undefined : boundLoggedText(agentId),
      detail: boundLoggedText(message),
    });
    return new thriftGenerated.InvalidBatch({ message });
  }

  function sequenceDetail(batch: AnyBatch): string {
    // Refused below the floor: this node took a first batch of this agent id far ahead of it (BatchDedupe).
    if (dedupe.has(batch.agentId, batch.sequence))
      return `sequence ${batch.sequence} is more than ${dedupe.maxGap} below what this node holds of this agent id; start a new agent id`;
    return `sequence ${batch.sequence} is more than ${dedupe.maxGap} above the highest this agent sent; start a new agent id`;
  }

  const notActive = (): Error => {
    counters.refusedNotActive += 1;
    return new thriftGenerated.NotActive({
      message: `${options.nodeId} is not the active node`,
      nodeId: options.nodeId,
    });
  };

  /**
   * Takes a batch: checks, dedupes, applies and forwards it, all in this turn
   * of the event loop; then waits for the passive. Only primitives are kept
   * across the wait (`settle`): the decoded batch, its wire form and the
   * frame it came in are garbage the moment it is applied, not after the
   * passive's acknowledgement, so at full flight they die young instead of
   * being promoted and swept (a fifth of the active's time went to the GC).
   */
  const publish = (checked: Result<AnyBatch, BatchDecodeError>, peer: string | undefined): Promise<BatchAck> => {
    try {
      return take(checked, peer);
    } catch (error) {
      return Promise.reject(error);
    }
  };

  const take = (checked: Result<AnyBatch, BatchDecodeError>, peer: string | undefined): Promise<BatchAck> => {
    const epoch = role === 'ACTIVE' ? lease.epoch : undefined;
    if (epoch === undefined) throw notActive();
    if (!checked.ok) {
      const agentId = checked.error.context.agentId;
      throw refused('invalid', checked.error.message, peer, typeof agentId === 'string' ? agentId : undefined);
    }
    const batch = checked.value;
    const refusal = admit(batch);
    if (refusal) throw refused(refusal.reason, refusal.detail, peer, batch.agentId);
    const { agentId, sequence } = batch;
    const outcome = dedupe.add(agentId, sequence);
    if (outcome === 'out_of_window') throw refused('sequence_out_of_window', sequenceDetail(batch), peer, agentId);
    if (outcome === 'duplicate') {
      counters.duplicates += 1;
      // Its first copy may still be on its way to the passive: answered once all forwarded so far is held.
      return settle(link.settled(), agentId, sequence, epoch, true);
    }
    engine.apply(batch);
    counters.batchesAccepted += 1;
    counters.eventsAccepted += statCount(batch);
    return settle(link.replicate(batch), agentId, sequence, epoch, false);
  };

  /** The agent's answer once the passive holds the batch (or cannot). */
  const settle = async (
    replication: Promise<boolean>,
    agentId: string,
    sequence: number,
    epoch: number,
    duplicate: boolean,
  ): Promise<BatchAck> => {
    const replicated = await replication;
    if (!duplicate && !replicated) counters.unreplicatedAcks += 1;
    // Lost the lease meanwhile: no ack under an old epoch, a resend's neither (its first copy may not be
    // on the passive that took over); the agent resends to the new active, which dedupes it.
    if (lease.epoch !== epoch) throw notActive();
    return { agentId, sequence, duplicate, epoch, replicated };
  };

  const source = new ThriftSource({
    host: options.thrift.host,
    port: options.thrift.port,
    maxFrameBytes,
    maxConnections: options.thriftMaxConnections,
    maxConnectionsPerPeer: options.thriftMaxConnectionsPerPeer,
    idleTimeoutMs: options.thriftIdleTimeoutMs,
    tls: options.thriftTls,
    handler: { publish },
    clock,
    logger: log,
  });

  const loopDelay = new LoopDelayWindows(clock);

  const watchPeer = async (epoch: number): Promise<void> => {
    const members = await options.store.members(groupId, lease.lengthMs).catch(() => []);
    if (role !== 'ACTIVE' || lease.epoch !== epoch) return;
    const peer = members.find((m) => m.alive && m.nodeId !== options.nodeId);
    if (peer) link.attach(peer.syncEndpoint, epoch, peer.nodeId);
  };

  const becomeActive = async (epoch: number, previous: PreviousHolder | undefined, heardAt: number): Promise<void> => {
    role = 'ACTIVE';
    const activation = activationOf({
      nodeId: options.nodeId,
      previous,
      followed: syncServer.followed,
      lastTerm: ownTerm,
      heardAt,
      now: clock.monotonicNow(),
    });
    ownTerm = { epoch, served: false, endedAt: undefined, replaced: false };
    syncServer.drop();
    // Pending outputs go out, the passive's own timeout faults are re-verified (see CepEngine.activate).
    engine.activate(epoch, activation);
    log.info('became active', { event: 'sp.became_active', epoch, previous, ...activation });
    clock.clearInterval(peerWatch);
    peerWatch = clock.setInterval(() => void watchPeer(epoch), heartbeatIntervalMs);
    void watchPeer(epoch);
    try {
      const port = await source.open();
      if (lease.epoch === epoch) {
        if (ownTerm.epoch === epoch) ownTerm.served = true;
        log.info('thrift source open', { event: 'sp.thrift_source_open', epoch, port });
      } else await source.close();
    } catch (error) {
      log.error('thrift source cannot open; resigning the lease', { event: 'sp.thrift_source_failed', epoch, error });
      await lease.resign(`thrift port ${options.thrift.port} unavailable`);
    }
  };

  const becomePassive = async (epoch: number, reason: string, heardAt: number): Promise<void> => {
    role = 'STEPPING_DOWN';
    // It stopped acting when the lease said so: outputs and acks check the lease synchronously.
    if (ownTerm?.epoch === epoch && ownTerm.endedAt === undefined) ownTerm.endedAt = heardAt;
    log.warn('stepping down', { event: 'sp.stepping_down', epoch, reason });
    engine.deactivate();
    clock.clearInterval(peerWatch);
    link.detach('stepping down');
    await source.close();
    role = 'PASSIVE';
    log.info('now passive', { event: 'sp.became_passive', epoch });
  };

  // Transitions are applied one at a time, in the order the lease reports them.
  let transitions: Promise<void> = Promise.resolve();
  const lease: LeaderLease = new LeaderLease({
    store: options.store,
    groupId,
    nodeId: options.nodeId,
    clock,
    logger: log,
    heartbeatIntervalMs,
    heartbeatMaxRetry: options.heartbeatMaxRetry,
    fencingMarginMs: options.fencingMarginMs,
    describe: () => ({
      role,
      syncEndpoint: `${options.sync.host}:${syncPort}`,
      thriftEndpoint: `${options.thrift.host}:${options.thrift.port}`,
    }),
    onChange: (event) => {
      const heardAt = clock.monotonicNow();
      transitions = transitions.then(() =>
        event.type === 'acquired'
          ? becomeActive(event.epoch, event.previous, heardAt)
          : becomePassive(event.epoch, event.reason, heardAt),
      );
    },
  });

  return {
    start: async () => {
      loopDelay.start();
      syncPort = await syncServer.listen();
      log.info('node started', { event: 'sp.node_started', role, syncPort, thriftPort: options.thrift.port });
      lease.start();
    },
    close: once(async () => {
      await lease.close();
      await transitions;
      clock.clearInterval(peerWatch);
      link.detach('closing');
      await source.close();
      await syncServer.close();
      engine.close();
      loopDelay.stop();
    }),
    status: () => {
      const lag = link.lag();
      return {
        nodeId: options.nodeId,
        groupId,
        role,
        epoch: lease.epoch,
        thriftPort: source.port,
        syncPort,
        passive: { endpoint: link.peer, link: link.status, lagBatches: lag.batches, lagMs: Math.round(lag.oldestMs) },
        following: role === 'PASSIVE' ? syncServer.following : undefined,
        counters: {
          ...counters,
          badFrames: source.counters.badFrames,
          syncViolations: syncServer.counters.violations,
          syncAuthFailures: syncServer.counters.authFailures + link.authFailures,
          syncHellosRefused: syncServer.counters.hellosRefused,
          syncConnectionsRefused: syncServer.counters.connectionsRefused,
          syncLinks: syncServer.counters.links,
          syncBatchesApplied: syncServer.counters.batchesApplied,
          connectionsRefused: source.counters.connectionsRefused,
          tlsHandshakeFailures: source.counters.tlsHandshakeFailures,
          idleConnectionsClosed: source.counters.idleClosed,
        },
        refusals: { ...refusals },
        eventLoop: loopDelay.status(),
        engine: engine.status(),
      };
    },
    get role() {
      return role;
    },
    engineState: () => engine.exportState(),
    engineMemberState: (memberId) => engine.exportMember?.(memberId),
    engineMembers: () => engine.trackedMembers?.(),
  };
}
