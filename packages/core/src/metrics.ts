import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';

/*
 * Prometheus metrics (README "Operations → Metrics"). Every value is read
 * from the service's own state when Prometheus scrapes, never kept twice:
 * a metric cannot drift from the status it describes, and a scrape costs
 * only what reading that status costs.
 */

/**
 * A registry with Node's process metrics (CPU, memory, event-loop lag, GC, handles): one per service.
 * `eventLoopSampleMs`: how often the event-loop lag is sampled (prom-client's 10 ms by default). Each
 * sample wakes the process: at 10 ms an idle process spends some 6 ms of CPU a second on it, nothing
 * for one service but a core for 150 cartridge agents on one host; they sample every second.
 */
export function serviceRegistry(options: { eventLoopSampleMs?: number } = {}): Registry {
  const register = new Registry();
  collectDefaultMetrics({
    register,
    ...(options.eventLoopSampleMs === undefined ? {} : { eventLoopMonitoringPrecision: options.eventLoopSampleMs }),
  });
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

/**
 * `read`, called once per turn of the event loop: a scrape reads every metric
 * in one turn, so a service's status is made once per scrape, not once per
 * metric (some 35 of them), and every metric of the scrape sees the same one.
 */
export function oncePerTurn<T>(read: () => T): () => T {
  let cached: { value: T } | undefined;
  return () => {
    if (!cached) {
      cached = { value: read() };
      setImmediate(() => {
        cached = undefined;
      });
    }
    return cached.value;
  };
}
