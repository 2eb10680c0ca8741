import type { BrokerEndpoint, ConnectOptions, Connector, MqttConnection } from '../connection.js';

export type FakeBrokerMode = 'up' | 'down' | 'hung';

interface FakeConnection extends MqttConnection {
  filters: string[];
  deliver(topic: string, payload: Buffer): void;
  end(error?: Error): void;
}

/** `a/#` matches `a/b`; `a/+` matches `a/b`; exact otherwise. */
function matches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** The broker pair `a` and `b` that unit tests hand to a client connecting through `FakeBrokers` (which goes by name). */
export const FAKE_BROKER_PAIR: readonly BrokerEndpoint[] = [
  { name: 'a', host: 'h', port: 1 },
  { name: 'b', host: 'h', port: 2 },
];

/**
 * In-memory brokers for unit tests of the resilient clients: each can be up,
 * down (connects refused) or hung (accepts TCP but never answers: no CONNACK,
 * no PUBACK), and `kill()` drops every connection as a crashed broker does.
 * A connection's Last Will is published when it ends, however it ends (the
 * real connector never sends DISCONNECT).
 * Integration tests use real brokers; this is for timer logic on fake time.
 */
export class FakeBrokers {
  readonly published = new Map<string, { topic: string; payload: Buffer }[]>();
  readonly connects = new Map<string, number>();
  /** What each connect asked for, in order: broker name and the client's ConnectOptions. */
  readonly connectOptions: { broker: string; options: ConnectOptions }[] = [];
  private readonly modes = new Map<string, FakeBrokerMode>();
  private readonly connections = new Map<string, Set<FakeConnection>>();
  private readonly crashing = new Set<string>();

  mode(name: string): FakeBrokerMode {
    return this.modes.get(name) ?? 'up';
  }

  set(name: string, mode: FakeBrokerMode): void {
    this.modes.set(name, mode);
    if (mode === 'down') this.kill(name);
  }

  /** Drops every connection to `name` (a crash: no will is published); its mode is unchanged. */
  kill(name: string): void {
    this.crashing.add(name);
    for (const connection of this.connections.get(name) ?? []) connection.end(new Error('connection reset'));
    this.crashing.delete(name);
  }

  /** Drops one client's connection, as a dead client or a cut link does: the broker publishes its will. */
  drop(connection: MqttConnection): void {
    (connection as FakeConnection).end(new Error('connection reset'));
  }

  /** The open connections to `name`, oldest first. */
  open(name: string): MqttConnection[] {
    return [...(this.connections.get(name) ?? [])];
  }

  /** Publishes from outside (another client) to every matching subscriber of `name`. */
  inject(name: string, topic: string, payload: Buffer): void {
    for (const connection of this.connections.get(name) ?? []) {
      if (connection.filters.some((f) => matches(f, topic))) connection.deliver(topic, payload);
    }
  }

  messages(name: string): { topic: string; payload: Buffer }[] {
    return this.published.get(name) ?? [];
  }

  readonly connector: Connector = (endpoint: BrokerEndpoint, options: ConnectOptions) => {
    const name = endpoint.name;
    this.connects.set(name, (this.connects.get(name) ?? 0) + 1);
    this.connectOptions.push({ broker: name, options });
    const mode = this.mode(name);
    if (mode === 'down') return Promise.reject(new Error(`connect ECONNREFUSED (${name})`));
    if (mode === 'hung') return new Promise<MqttConnection>(() => {});
    return Promise.resolve(this.connect(endpoint, options.will));
  };

  private connect(endpoint: BrokerEndpoint, will: ConnectOptions['will']): FakeConnection {
    const name = endpoint.name;
    const closeListeners: ((error?: Error) => void)[] = [];
    const messageListeners: ((topic: string, payload: Buffer) => void)[] = [];
    const waiting = new Set<(error: Error) => void>();
    let open = true;
    const set = this.connections.get(name) ?? new Set<FakeConnection>();
    this.connections.set(name, set);
    const connection: FakeConnection = {
      endpoint,
      filters: [],
      publish: (topic, payload) => {
        if (!open) return Promise.reject(new Error('closed'));
        if (this.mode(name) === 'hung') return new Promise((_, reject) => waiting.add(reject));
        const list = this.published.get(name) ?? [];
        list.push({ topic, payload });
        this.published.set(name, list);
        this.inject(name, topic, payload);
        return Promise.resolve();
      },
      subscribe: (filters) => {
        if (!open) return Promise.reject(new Error('closed'));
        if (this.mode(name) === 'hung') return new Promise((_, reject) => waiting.add(reject));
        connection.filters.push(...filters);
        return Promise.resolve();
      },
      onMessage: (listener) => void messageListeners.push(listener),
      onClose: (listener) => void closeListeners.push(listener),
      close: () => connection.end(),
      deliver: (topic, payload) => {
        for (const listener of messageListeners) listener(topic, payload);
      },
      end: (error) => {
        if (!open) return;
        open = false;
        set.delete(connection);
        for (const reject of waiting) reject(new Error('closed'));
        for (const listener of closeListeners) listener(error);
        if (will && !this.crashing.has(name)) this.inject(name, will.topic, will.payload);
      },
    };
    set.add(connection);
    return connection;
  }
}
