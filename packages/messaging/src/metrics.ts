import { derivedCounter, derivedGauge } from '@faultline/core';
import type { Registry } from 'prom-client';
import type { LinkState } from './broker-link.js';
import type { Publisher } from './publisher.js';
import type { Subscriber } from './subscriber.js';

/** Every possible state of a link, each a series: 1 for the one it is in, 0 for the others. */
const LINK_STATES: readonly LinkState[] = ['connecting', 'up', 'down', 'closed'];

/** The `{broker, state}` series of links to the brokers (a subscriber's `links()`): what a `…_broker_link` gauge reads. */
export function linkSeries(links: Readonly<Record<string, LinkState>>): (readonly [Record<string, string>, number])[] {
  return Object.entries(links).flatMap(([broker, state]) =>
    LINK_STATES.map((s) => [{ broker, state: s }, s === state ? 1 : 0] as const),
  );
}

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
      () => linkSeries(subscriber.links()),
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
