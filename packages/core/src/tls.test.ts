import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from './config.js';
import { ConfigError } from './errors.js';
import { readTlsFiles } from './tls.js';

describe('the tls section (README "TLS")', () => {
  it('is off by default', () => {
    const config = resolveConfig({}, { env: {} });
    expect(config.tls).toEqual({});
    expect(readTlsFiles(config.tls.thrift)).toBeUndefined();
  });

  it('takes certFile, keyFile and caFile per port, all three', () => {
    const files = { certFile: 'c.pem', keyFile: 'k.pem', caFile: 'ca.pem' };
    expect(resolveConfig({ tls: { thrift: files, mqtt: files } }, { env: {} }).tls).toEqual({
      thrift: files,
      mqtt: files,
    });
    expect(() => resolveConfig({ tls: { thrift: { certFile: 'c.pem' } } }, { env: {} })).toThrow(ConfigError);
    expect(() => resolveConfig({ tls: { https: files } }, { env: {} })).toThrow(ConfigError);
  });

  it('reads the files, and a missing one throws instead of falling back to plain TCP', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fl-tls-'));
    for (const name of ['c.pem', 'k.pem', 'ca.pem']) writeFileSync(path.join(dir, name), name);
    const at = (name: string) => path.join(dir, name);
    expect(readTlsFiles({ certFile: at('c.pem'), keyFile: at('k.pem'), caFile: at('ca.pem') })).toEqual({
      cert: Buffer.from('c.pem'),
      key: Buffer.from('k.pem'),
      ca: Buffer.from('ca.pem'),
    });
    expect(() =>
      readTlsFiles({ certFile: at('c.pem'), keyFile: at('none.pem'), caFile: at('ca.pem') }, 'tls.thrift'),
    ).toThrow(/^tls\.thrift\.keyFile: cannot read .*none\.pem \(ENOENT\)$/);
  });
});
