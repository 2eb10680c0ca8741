import { derivedCounter, derivedGauge, oncePerTurn, PROBE_KINDS, type serviceRegistry } from '@faultline/core';
import { messagingMetrics, type Publisher } from '@faultline/messaging';
import type { AgentCounters, AgentProbes } from './agent.js';
import type { SenderState } from './batch-sender.js';

type Registry = ReturnType<typeof serviceRegistry>;

/** What the agent's metrics read when scraped: its own counters and state, made once per scrape. */
export interface AgentStatus {
  counters: Readonly<AgentCounters>;
  /** Batches held for an ack. */
  queued: number;
  activated: boolean;
  /** Liveness failed past its threshold: the workload is reported down. */
  down: boolean;
  /** False while readiness fails past its threshold. */
  inService: boolean;
  probes: AgentProbes;
  sender: SenderState;
  /** Every SP endpoint (`host:port`), in the order they are tried… */
  endpoints: readonly string[];
  /** …the one batches go to now… */
  currentEndpoint: string;
  /** …and the Thrift connection to each the transport holds; undefined: the transport cannot tell. */
  connections: Readonly<Record<string, 'connecting' | 'open'>> | undefined;
}

const SENDER_STATES: readonly SenderState[] = ['idle', 'sending', 'backoff', 'closed'];
const CONNECTION_STATES = ['connecting', 'open', 'closed'] as const;

/**
 * A cartridge agent's metrics (README "Operations → Agent metrics"), every one
 * read from `read()` when scraped, nothing counted twice; its publisher's
 * outbox and link with them (`faultline_agent_outbox_…`). No member label:
 * the member's identity comes from the labels of the target file the local
 * driver writes for it.
 */
export function agentMetrics(register: Registry, read: () => AgentStatus, publisher: Publisher): void {
  const status = oncePerTurn(read);
  const counters = () => status().counters;
  const counter = (name: string, help: string, value: (c: Readonly<AgentCounters>) => number) =>
    derivedCounter(register, `faultline_agent_${name}_total`, help, () => value(counters()));
  const byReason = (
    name: string,
    help: string,
    reasons: readonly (readonly [reason: string, value: (c: Readonly<AgentCounters>) => number])[],
  ) =>
    derivedCounter(
      register,
      `faultline_agent_${name}_total`,
      help,
      () => reasons.map(([reason, value]) => [{ reason }, value(counters())] as const),
      ['reason'],
    );

  derivedGauge(
    register,
    'faultline_agent_activated',
    '1 once the startup probe passed (InstanceActivatedEvent).',
    () => (status().activated ? 1 : 0),
  );
  derivedGauge(
    register,
    'faultline_agent_probe_passing',
    'Each probe: 1 while it passes, 0 while it fails past its threshold (startup: 0 until it passed). No series for a readiness probe not configured.',
    () =>
      PROBE_KINDS.flatMap((probe) => {
        const now = status().probes[probe];
        return now ? [[{ probe }, now.state === 'passing' ? 1 : 0] as const] : [];
      }),
    ['probe'],
  );
  derivedCounter(
    register,
    'faultline_agent_probe_checks_total',
    'Checks of each probe, by result: pass, fail (a timeout included) and timeout.',
    () =>
      PROBE_KINDS.flatMap((probe) => {
        const now = status().probes[probe];
        if (!now) return [];
        const { checks, failures, timeouts } = now.counters;
        return [
          [{ probe, result: 'pass' }, checks - failures] as const,
          [{ probe, result: 'fail' }, failures] as const,
          [{ probe, result: 'timeout' }, timeouts] as const,
        ];
      }),
    ['probe', 'result'],
  );
  counter('batches', 'Batches made, one per collection.', (c) => c.batches);
  derivedGauge(
    register,
    'faultline_agent_batches_queued',
    'Batches held for an SP acknowledgement (at most agent.maxUnackedBatches).',
    () => status().queued,
  );
  counter('batch_sends', 'Publish calls to an SP endpoint: first sends and resends.', (c) => c.sent);
  byReason('batch_send_failures', 'Publish calls that got no acknowledgement, by reason: the agent fails over.', [
    ['not_active', (c) => c.refused],
    ['timeout', (c) => c.timeouts],
    // errors counts the timeouts too
    ['error', (c) => c.errors - c.timeouts],
  ]);
  counter('batches_acked', 'Batches an SP acknowledged.', (c) => c.acked);
  counter('batches_duplicate', 'Acknowledgements of batches the SP had already taken (a resend).', (c) => c.duplicates);
  counter('stats_acked', 'Health stats in the batches an SP acknowledged.', (c) => c.statsAcked);
  byReason('batches_dropped', 'Batches given up, by reason: the resend buffer was full, or the SP refused them.', [
    ['buffer_full', (c) => c.droppedBatches],
    ['rejected', (c) => c.rejectedBatches],
  ]);
  counter(
    'id_renewals',
    'New agent ids taken after the SP refused a sequence as out of its window.',
    (c) => c.agentIdRenewals,
  );
  counter('failovers', 'Moves to the next SP endpoint.', (c) => c.failovers);
  derivedGauge(
    register,
    'faultline_agent_sender_state',
    "The batch sender's state: 1 for the one it is in (backoff: no SP endpoint took a batch in a whole round).",
    () => {
      const { sender } = status();
      return SENDER_STATES.map((state) => [{ state }, state === sender ? 1 : 0] as const);
    },
    ['state'],
  );
  derivedGauge(
    register,
    'faultline_agent_sp_endpoint',
    'The SP endpoint batches go to now: 1 for it, 0 for the others.',
    () => {
      const { endpoints, currentEndpoint } = status();
      return endpoints.map((endpoint) => [{ endpoint }, endpoint === currentEndpoint ? 1 : 0] as const);
    },
    ['endpoint'],
  );
  derivedGauge(
    register,
    'faultline_agent_sp_connection',
    'The Thrift connection to each SP endpoint: 1 for the state it is in, 0 for the others.',
    () => {
      const { endpoints, connections } = status();
      if (!connections) return undefined;
      return endpoints.flatMap((endpoint) => {
        const now = connections[endpoint] ?? 'closed';
        return CONNECTION_STATES.map((state) => [{ endpoint, state }, state === now ? 1 : 0] as const);
      });
    },
    ['endpoint', 'state'],
  );
  counter('collections', 'Health-stat collections.', (c) => c.collections);
  counter(
    'collections_skipped',
    'Collections skipped because the one before was still running (a slow workload).',
    (c) => c.skippedTicks,
  );
  byReason(
    'workload_probe_failures',
    'Collections without requests_in_flight, by reason: ports_not_open (liveness failed past its threshold: reported down), no_answer (GET /stats not answered in time: left out), invalid_stats.',
    [
      ['ports_not_open', (c) => c.portsNotOpen],
      ['no_answer', (c) => c.statsUnanswered],
      ['invalid_stats', (c) => c.invalidWorkloadStats],
    ],
  );
  counter(
    'machine_figures_invalid',
    'Machine figures (load, memory) that were not usable and were left out.',
    (c) => c.invalidSystemStats,
  );
  counter(
    'port_file_failures',
    'Writes or removals of its metrics port file (in its own folder) that failed.',
    (c) => c.portFileFailures,
  );
  counter(
    'http_requests_refused',
    'Requests to its health and metrics port refused for their method.',
    (c) => c.refusedRequests,
  );
  messagingMetrics(register, 'agent', { publisher });
}
