import { describe, expect, it } from 'vitest';
import { resolveConfig } from './config.js';
import { parseBrokerUrl } from './config-schema.js';
import { ConfigError, type ConfigIssue } from './errors.js';

/** The issues of a configuration that must be refused. */
function issuesOf(input: unknown): readonly ConfigIssue[] {
  try {
    resolveConfig(input, { env: {} });
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

const TLS = { mqtt: { certFile: 'server.pem', keyFile: 'server-key.pem', caFile: 'ca.pem' } };

describe('brokers.kind external and brokers.nodes[].url (README "External brokers")', () => {
  it('takes kind external with nodes given by url: host and port come from it', () => {
    const config = resolveConfig(
      {
        brokers: {
          kind: 'external',
          nodes: [
            { name: 'a', url: 'mqtt://mq1.example:1885' },
            { name: 'b', url: 'mqtt://[::1]' },
          ],
        },
      },
      { env: {} },
    );
    expect(config.brokers.kind).toBe('external');
    expect(config.brokers.nodes).toEqual([
      { name: 'a', url: 'mqtt://mq1.example:1885', host: 'mq1.example', port: 1885, healthHost: '127.0.0.1' },
      // No port: the scheme's (1883); an IPv6 address without its brackets, as the clients dial it.
      { name: 'b', url: 'mqtt://[::1]', host: '::1', port: 1883, healthHost: '127.0.0.1' },
    ]);
  });

  it('keeps host and port working for every kind, and a url for every kind', () => {
    for (const kind of ['aedes', 'mosquitto', 'external']) {
      const config = resolveConfig(
        {
          brokers: {
            kind,
            nodes: [
              { name: 'a', host: '10.0.0.5', port: 1883 },
              { name: 'b', url: 'mqtt://10.0.0.6:1884' },
            ],
          },
        },
        { env: {} },
      );
      expect(config.brokers.nodes.map(({ host, port }) => `${host}:${port}`)).toEqual([
        '10.0.0.5:1883',
        '10.0.0.6:1884',
      ]);
      // No host: loopback, as before.
      expect(
        resolveConfig({ brokers: { kind, nodes: [{ name: 'a', port: 1 }] } }, { env: {} }).brokers.nodes[0],
      ).toEqual({ name: 'a', host: '127.0.0.1', port: 1, healthHost: '127.0.0.1' });
    }
  });

  it('takes mqtts:// exactly when tls.mqtt is set (its default port 8883)', () => {
    const config = resolveConfig(
      { tls: TLS, brokers: { kind: 'external', nodes: [{ name: 'a', url: 'mqtts://mq1.example' }] } },
      { env: {} },
    );
    expect(config.brokers.nodes[0]).toMatchObject({ host: 'mq1.example', port: 8883 });
    // host and port say nothing about the scheme: tls.mqtt alone decides.
    expect(
      resolveConfig({ tls: TLS, brokers: { kind: 'external', nodes: [{ name: 'a', port: 8883 }] } }, { env: {} })
        .brokers.nodes[0]?.port,
    ).toBe(8883);
  });

  it('refuses a scheme that disagrees with tls.mqtt, naming the node and what to write', () => {
    expect(issuesOf({ brokers: { kind: 'external', nodes: [{ name: 'a', url: 'mqtts://mq1.example' }] } })).toEqual([
      {
        key: 'brokers.nodes.0.url',
        reason:
          'mqtts:// needs tls.mqtt (its caFile is what the services verify the broker with): set it, or write mqtt://',
      },
    ]);
    expect(
      issuesOf({
        tls: TLS,
        brokers: {
          kind: 'external',
          nodes: [
            { name: 'a', url: 'mqtts://mq1.example' },
            { name: 'b', url: 'mqtt://mq2.example' },
          ],
        },
      }),
    ).toEqual([
      {
        key: 'brokers.nodes.1.url',
        reason: 'tls.mqtt is set, so every MQTT client connects over TLS: write mqtts://, or remove tls.mqtt',
      },
    ]);
  });

  it('refuses a node with both url and host or port, or with neither url nor port', () => {
    expect(
      issuesOf({
        brokers: {
          nodes: [
            { name: 'a', url: 'mqtt://h:1', port: 1 },
            { name: 'b', url: 'mqtt://h:1', host: 'h' },
            { name: 'c', host: 'h' },
          ],
        },
      }),
    ).toEqual([
      { key: 'brokers.nodes.0.url', reason: 'give url, or host and port, not both' },
      { key: 'brokers.nodes.1.url', reason: 'give url, or host and port, not both' },
      { key: 'brokers.nodes.2.port', reason: 'give port (and host), or url' },
    ]);
  });

  it('refuses healthPort on an external broker, as on Mosquitto', () => {
    const issues = issuesOf({ brokers: { kind: 'external', nodes: [{ name: 'a', port: 1883, healthPort: 7921 }] } });
    expect(issues).toEqual([
      {
        key: 'brokers.nodes',
        reason:
          "healthPort is served by Faultline's own broker nodes (kind aedes); Mosquitto and external brokers have none",
      },
    ]);
  });

  it('refuses a kind it does not know', () => {
    expect(issuesOf({ brokers: { kind: 'rabbitmq' } }).map((i) => i.key)).toEqual(['brokers.kind']);
  });

  it('reads a url as mqtt[s]://host[:port] only, saying what is wrong otherwise', () => {
    expect(parseBrokerUrl('mqtt://mq1.example:1883')).toEqual({ scheme: 'mqtt', host: 'mq1.example', port: 1883 });
    expect(parseBrokerUrl('mqtts://10.1.2.3/')).toEqual({ scheme: 'mqtts', host: '10.1.2.3', port: 8883 });
    expect(parseBrokerUrl('mqtt://[fd00::7]:1900')).toEqual({ scheme: 'mqtt', host: 'fd00::7', port: 1900 });
    const refused: [string, string][] = [
      ['mq1.example:1883', 'unknown scheme mq1.example:'],
      ['tcp://mq1.example:1883', 'unknown scheme tcp:'],
      ['mqtt://sp:secret@mq1.example:1883', 'no user or password in the URL: the accounts are brokers.credentials'],
      ['mqtt://mq1.example:1883/faultline', 'no path, query or fragment'],
      ['mqtt://mq1.example:1883?x=1', 'no path, query or fragment'],
      ['mqtt://mq1.example:0', 'port 0'],
      ['mqtt://mq1.example:65536', 'not a URL'],
      ['mqtt://', 'no host name or IP address'],
      ['mqtt://mq_1.example', 'no host name or IP address'],
      ['not a url', 'not a URL'],
    ];
    for (const [url, reason] of refused) {
      const parsed = parseBrokerUrl(url);
      expect(typeof parsed, url).toBe('string');
      expect(parsed, url).toContain(reason);
    }
  });
});
