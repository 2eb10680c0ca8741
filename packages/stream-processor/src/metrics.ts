import type { FaultDeclared } from '@faultline/cep';
import { derivedCounter, derivedGauge, oncePerTurn } from '@faultline/core';
import { messagingMetrics, type Publisher, type Subscriber } from '@faultline/messaging';
import { Histogram, type Registry } from 'prom-client';
import type { SpNode, SpRole, SpStatus } from './node.js';

const ROLES: readonly SpRole[] = ['ACTIVE', 'PASSIVE', 'STEPPING_DOWN'];

/** Seconds past the fault timeout a silent member is declared: 5 ms to 60 s. */
const OVERSHOOT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * `faultline_sp_detection_overshoot_seconds`, and the engine's hook that
 * feeds it (`onFaultDeclared`): how long past the fault timeout each silent
 * member was declared.
 */
export function detectionOvershoot(register: Registry): (fault: FaultDeclared) => void {
  const histogram = new Histogram({
    name: 'faultline_sp_detection_overshoot_seconds',
    help: 'How long past the fault timeout a silent member was declared faulted.',
    buckets: OVERSHOOT_BUCKETS,
    registers: [register],
  });
  return (fault) => {
    if (fault.overshootMs !== undefined) histogram.observe(fault.overshootMs / 1000);
  };
}

/** A number the engine's status reports under `key`, if it does. */
const engineFigure = (node: SpNode, key: string) => {
  const value = node.status().engine[key];
  return typeof value === 'number' ? value : undefined;
};

/**
 * An SP node's metrics (README "Operations → Metrics"), each read from
 * `node.status()` when scraped; its publisher's and topology subscriber's
 * with them.
 */
export function spMetrics(
  register: Registry,
  node: SpNode,
  messaging: { publisher?: Publisher | undefined; subscriber?: Subscriber | undefined } = {},
): void {
  const status = oncePerTurn(() => node.status());
  const gauge = (name: string, help: string, read: () => number | undefined) =>
    derivedGauge(register, `faultline_sp_${name}`, help, read);
  // Labelled by the node: an unlabelled gauge always has a series (0), and these have none when undefined.
  const optionalGauge = (name: string, help: string, read: () => number | undefined) =>
    derivedGauge(
      register,
      `faultline_sp_${name}`,
      help,
      () => {
        const value = read();
        return value === undefined ? undefined : [[{ node: status().nodeId }, value]];
      },
      ['node'],
    );
  const counter = (name: string, help: string, read: () => number) =>
    derivedCounter(register, `faultline_sp_${name}_total`, help, read);

  derivedGauge(
    register,
    'faultline_sp_role',
    "The node's role: 1 for the one it is in, 0 for the others.",
    () => {
      const { role } = status();
      return ROLES.map((r) => [{ role: r }, r === role ? 1 : 0] as const);
    },
    ['role'],
  );
  // The active's epoch: only while it holds the lease as the active (what the alerts count, not the role).
  optionalGauge('epoch', 'The lease epoch this node holds as the active; no series otherwise.', () =>
    status().role === 'ACTIVE' ? status().epoch : undefined,
  );
  const linked = (s: SpStatus) => s.role === 'ACTIVE' && s.passive.link === 'ready';
  gauge('passive_linked', 'Active: 1 while a passive is linked and following.', () => (linked(status()) ? 1 : 0));
  gauge('following', 'Passive: 1 while it follows an active, its snapshot applied.', () =>
    status().role === 'PASSIVE' && status().following?.synced === true ? 1 : 0,
  );
  optionalGauge(
    'replication_lag_batches',
    'Active: batches sent to the linked passive and not yet acknowledged.',
    () => (linked(status()) ? status().passive.lagBatches : undefined),
  );
  optionalGauge(
    'replication_lag_seconds',
    'Active: age of the oldest batch the linked passive has not acknowledged.',
    () => (linked(status()) ? status().passive.lagMs / 1000 : undefined),
  );
  counter('batches_accepted', 'Batches accepted from agents.', () => status().counters.batchesAccepted);
  counter('stats_accepted', 'Health stats accepted from agents.', () => status().counters.eventsAccepted);
  counter(
    'batches_duplicate',
    'Batches seen before (acknowledged again, not applied).',
    () => status().counters.duplicates,
  );
  derivedCounter(
    register,
    'faultline_sp_batches_refused_total',
    'Batches refused, by reason (on the passive: forwarded batches it would not apply).',
    () => {
      const s = status();
      return [
        ...Object.entries(s.refusals).map(([reason, n]) => [{ reason }, n] as const),
        [{ reason: 'not_active' }, s.counters.refusedNotActive] as const,
      ];
    },
    ['reason'],
  );
  const counted: [name: string, help: string, key: keyof SpStatus['counters']][] = [
    ['acks_without_replication', 'Batches acknowledged to an agent with no passive holding them.', 'unreplicatedAcks'],
    ['outputs_published', 'Outputs (faults, summaries) handed to the publisher.', 'outputsPublished'],
    ['outputs_fenced', 'Outputs withheld because the lease was not valid at that instant.', 'outputsFenced'],
    ['outputs_failed', 'Outputs the publisher refused (its outbox failed).', 'outputsFailed'],
    ['bad_frames', 'Thrift frames that could not be read.', 'badFrames'],
    ['sync_auth_failures', 'Sync handshakes that failed authentication.', 'syncAuthFailures'],
    ['connections_refused', 'Thrift connections refused at a cap.', 'connectionsRefused'],
  ];
  for (const [name, help, key] of counted) counter(name, help, () => status().counters[key]);
  gauge(
    'event_loop_delay_p99_seconds',
    "The event loop's delay p99 over the last whole 5 s window.",
    () => status().eventLoop.p99DelayMs / 1000,
  );
  gauge(
    'event_loop_delay_p99_minute_seconds',
    "The event loop's delay p99 over every sample of the last 12 whole 5 s windows.",
    () => status().eventLoop.minuteP99DelayMs / 1000,
  );
  optionalGauge('members', 'Members the engine tracks.', () => engineFigure(node, 'members'));
  optionalGauge('members_faulted', 'Members the engine holds as faulted.', () => engineFigure(node, 'faulted'));
  optionalGauge('pending_outputs', 'Outputs the engine holds unconfirmed (a passive) or unsent.', () =>
    engineFigure(node, 'pendingOutputs'),
  );
  messagingMetrics(register, 'sp', messaging);
}
