import { derivedCounter, derivedGauge, oncePerTurn } from '@faultline/core';
import { linkSeries } from '@faultline/messaging';
import type { Registry } from 'prom-client';
import type { AutoscalerNodeStatus, AutoscalerTotals } from './autoscaler-node.js';
import { MEMBER_STATES } from './member.js';

type Acting = NonNullable<AutoscalerNodeStatus['autoscaler']>;

/**
 * An autoscaler node's metrics (README "Operations → Metrics"), each read
 * from `status()` and `totals()` when scraped. The counters are the node's
 * over its process, every term added up; the acting autoscaler's gauges
 * (members, holds, outbox, broker links) have series only on the node that acts.
 */
export function autoscalerMetrics(
  register: Registry,
  readStatus: () => AutoscalerNodeStatus,
  readTotals: () => AutoscalerTotals,
): void {
  const status = oncePerTurn(readStatus);
  const totals = oncePerTurn(readTotals);
  const acting = () => status().autoscaler;
  const node = () => ({ node: status().node });
  derivedGauge(
    register,
    'faultline_autoscaler_role',
    "The node's role: 1 for the one it is in, 0 for the other.",
    () => {
      const { role } = status();
      return (['ACTIVE', 'PASSIVE'] as const).map((r) => [{ role: r }, r === role ? 1 : 0] as const);
    },
    ['role'],
  );
  derivedGauge(
    register,
    'faultline_autoscaler_epoch',
    'The lease epoch the node acts under; no series while it stands by.',
    () => {
      const { epoch } = status();
      return epoch === null ? undefined : [[node(), epoch]];
    },
    ['node'],
  );
  derivedCounter(
    register,
    'faultline_autoscaler_terms_total',
    'Lease terms this node has acted in.',
    () => status().terms,
  );
  derivedCounter(
    register,
    'faultline_autoscaler_actions_total',
    'Actions decided by this node, by action and cluster, every term it acted in.',
    () => totals().actions.map((a) => [{ action: a.action, cluster: a.clusterId }, a.count] as const),
    ['action', 'cluster'],
  );
  derivedGauge(
    register,
    'faultline_autoscaler_members',
    'Members by cluster and state.',
    () =>
      acting()?.clusters.flatMap((c) =>
        MEMBER_STATES.map(
          (state) => [{ cluster: c.clusterId, state }, c.members.filter((m) => m.state === state).length] as const,
        ),
      ) ?? [],
    ['cluster', 'state'],
  );
  derivedGauge(
    register,
    'faultline_autoscaler_fault_storm_held',
    "1 while a cluster's faults are held in a fault storm.",
    () =>
      acting()?.clusters.map((c) => [{ cluster: c.clusterId }, c.faultStormHeldSince === null ? 0 : 1] as const) ?? [],
    ['cluster'],
  );
  const count = (name: string, help: string, read: (t: AutoscalerTotals) => number) =>
    derivedCounter(register, `faultline_autoscaler_${name}_total`, help, () => [[node(), read(totals())]], ['node']);
  count('faults', 'MemberFaults and absences acted upon or held.', (t) => t.faults);
  count('faults_held', 'Faults held in a fault storm or while the detector was silent.', (t) => t.faultsHeld);
  count('spawned', 'Members spawned.', (t) => t.spawned);
  count('terminated', 'Members terminated.', (t) => t.terminated);
  count('publish_errors', 'Envelopes the publisher refused.', (t) => t.publishErrors);
  const actingGauge = (name: string, help: string, read: (s: Acting) => number) =>
    derivedGauge(
      register,
      `faultline_autoscaler_${name}`,
      help,
      () => {
        const s = acting();
        return s ? [[node(), read(s)]] : undefined;
      },
      ['node'],
    );
  actingGauge('outbox_messages', 'Messages in the outbox, not yet acknowledged by a broker.', (s) => s.outboxPending);
  actingGauge(
    'registry_backlog',
    'Member rows whose newest version has not reached the registry yet.',
    (s) => s.registryBacklog,
  );
  derivedGauge(
    register,
    'faultline_autoscaler_broker_link',
    "The subscriber's link to each broker: 1 for the state it is in, 0 for the others.",
    () => linkSeries(acting()?.brokers ?? {}),
    ['broker', 'state'],
  );
}
