import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { Publisher } from './publisher.js';
import type { Subscriber } from './subscriber.js';

/*
 * Prometheus metrics (README "Operations → Metrics"). Every value is read
 * from the service's own state when Prometheus scrapes, never kept twice:
 * a metric cannot drift from the status it describes, and a scrape costs
 * only what reading that status costs.
 */

/** A registry with Node's process metrics (CPU, memory, event-loop lag, GC, handles): one per service. */
export function serviceRegistry(): Registry {
  const register = new Registry();
  collectDefaultMetrics({ register });
  return register;
}

type Labels = Record<string, string>;
/** A metric's series at scrape time: one value, or one per label set. */
type Read = () => number | undefined | readonly (readonly [Labels, number])[];

function readInto(metric: Counter | Gauge, read: Read): void {
  metric.reset();
  const value = read();
  if (value === undefined) return;
  const set = (labels: Labels, v: number) =>
    metric instanceof Counter ? metric.inc(labels, Math.max(0, v)) : metric.set(labels, v);
  if (typeof value === 'number') set({}, value);
  else for (const [labels, v] of value) set(labels, v);
}

/** A metric read at scrape time: `collect` sets its series from `read`. */
function derived(
  kind: typeof Counter | typeof Gauge,
  register: Registry,
  name: string,
  help: string,
  read: Read,
  labelNames: readonly string[],
): void {
  const configuration = {
    name,
    help,
    labelNames,
    registers: [register],
    collect(this: Counter | Gauge) {
      readInto(this, read);
    },
  };
  if (kind === Counter) new Counter(configuration);
  else new Gauge(configuration);
}

/**
 * A counter whose value is the service's own running total (`_total` by
 * Prometheus convention, which the name must carry). Undefined: no series.
 */
export function derivedCounter(
  register: Registry,
  name: string,
  help: string,
  read: Read,
  labelNames: readonly string[] = [],
): void {
  if (!name.endsWith('_total')) throw new Error(`counter ${name} must end in _total`);
  derived(Counter, register, name, help, read, labelNames);
}

/** A gauge read at scrape time. Undefined: no series (an epoch a passive does not hold). */
export function derivedGauge(
  register: Registry,
  name: string,
  help: string,
  read: Read,
  labelNames: readonly string[] = [],
): void {
  derived(Gauge, register, name, help, read, labelNames);
}

/** Every possible state of a link, each a series: 1 for the one it is in, 0 for the others. */
const LINK_STATES = ['connecting', 'up', 'down', 'closed'] as const;

/**
 * A service's messaging: its publisher's outbox and link, its subscriber's
 * link to each broker, under `faultline_<service>_…`.
 */
export function messagingMetrics(
  register: Registry,
  service: string,
  parts: { publisher?: Publisher | undefined; subscriber?: Subscriber | undefined },
): void {
  const prefix = `faultline_${service}`;
  const { publisher } = parts;
  if (publisher) {
    derivedGauge(
      register,
      `${prefix}_outbox_messages`,
      'Messages in the outbox, not yet acknowledged by a broker.',
      () => publisher.pending,
    );
    derivedGauge(register, `${prefix}_outbox_bytes`, 'Bytes the outbox holds.', () => publisher.outboxBytes);
    derivedCounter(
      register,
      `${prefix}_published_total`,
      'Envelopes accepted into the outbox.',
      () => publisher.counters.published,
    );
    derivedCounter(
      register,
      `${prefix}_acked_total`,
      'Messages a broker acknowledged.',
      () => publisher.counters.acked,
    );
    derivedGauge(register, `${prefix}_publisher_connected`, '1 while the publisher has a broker to send to.', () =>
      publisher.broker === undefined ? 0 : 1,
    );
  }
  const { subscriber } = parts;
  if (subscriber) {
    derivedGauge(
      register,
      `${prefix}_broker_link`,
      "The subscriber's link to each broker: 1 for the state it is in, 0 for the others.",
      () =>
        Object.entries(subscriber.links()).flatMap(([broker, state]) =>
          LINK_STATES.map((s) => [{ broker, state: s }, s === state ? 1 : 0] as const),
        ),
      ['broker', 'state'],
    );
    derivedCounter(
      register,
      `${prefix}_envelopes_dropped_total`,
      'Envelopes the subscriber refused, by reason.',
      () => [
        [{ reason: 'invalid' }, subscriber.counters.droppedInvalid],
        [{ reason: 'oversized' }, subscriber.counters.droppedOversized],
      ],
      ['reason'],
    );
  }
}
