import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ConfigError } from '@faultline/core';
import { describe, expect, it } from 'vitest';
import { renderMosquittoConf, writeMosquittoConfig } from './mosquitto-config.js';

const base = {
  name: 'a',
  host: '127.0.0.1',
  port: 1883,
  passwordFile: '/run/fl/passwd',
  aclFile: '/run/fl/acl',
  pidFile: '/run/fl/mosquitto.pid',
  logDest: 'stderr' as const,
  runAsUser: undefined,
};
const users = [{ role: 'sp' as const, username: 'sp', password: 'sp-password-123' }];

describe('the Mosquitto listener with TLS (README "TLS")', () => {
  it('writes certfile, keyfile and cafile after the listener line', () => {
    const text = renderMosquittoConf({
      ...base,
      tls: { certFile: '/etc/fl/server.pem', keyFile: '/etc/fl/server-key.pem', caFile: '/etc/fl/ca.pem' },
    });
    const lines = text.split('\n');
    const listener = lines.indexOf('listener 1883 127.0.0.1');
    expect(listener).toBeGreaterThan(0);
    expect(lines.slice(listener + 1, listener + 6)).toEqual([
      'certfile /etc/fl/server.pem',
      'keyfile /etc/fl/server-key.pem',
      'cafile /etc/fl/ca.pem',
      'tls_version tlsv1.2',
      'require_certificate false',
    ]);
  });

  it('writes none of them when TLS is off (the default)', () => {
    expect(renderMosquittoConf(base)).not.toMatch(/certfile|keyfile|cafile|tls_version/);
  });

  it('writes absolute paths and refuses one with whitespace', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fl-mosq-tls-'));
    const { configFile } = await writeMosquittoConfig({
      dir,
      port: 1883,
      users,
      tls: { certFile: 'server.pem', keyFile: 'server-key.pem', caFile: 'ca.pem' },
    });
    expect(readFileSync(configFile, 'utf8')).toContain(`certfile ${path.resolve('server.pem')}\n`);
    await expect(
      writeMosquittoConfig({
        dir,
        port: 1883,
        users,
        tls: { certFile: '/a b/server.pem', keyFile: 'k.pem', caFile: 'ca.pem' },
      }),
    ).rejects.toThrow(ConfigError);
  });
});
