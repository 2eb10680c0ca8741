import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, type FaultlineConfig, resolveConfig } from '@faultline/core';
import { createMemoryLogger } from '@faultline/core/testing';
import { describe, expect, it } from 'vitest';
import { UsageError } from './errors.js';
import { describeMosquittoExport, exportMosquittoConfig } from './mosquitto-export.js';
import {
  issueBrokerPasswords,
  platformServices,
  reportExternalBrokers,
  requireExternalBrokerPasswords,
} from './platform-services.js';
import { degraded, formatStatus, type StackStatus } from './status.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'faultline-external-'));

/** A password file as an operator writes one: mode 0600, at least 32 characters. */
function passwordFile(dir: string, role: string): string {
  const file = path.join(dir, `${role}.password`);
  writeFileSync(file, `${role}-password-of-a-fair-length-0123456789\n`, { mode: 0o600 });
  return file;
}

function external(extra: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = {}): FaultlineConfig {
  return resolveConfig(
    {
      brokers: {
        kind: 'external',
        nodes: [
          { name: 'a', url: 'mqtt://127.0.0.1:21883' },
          { name: 'b', url: 'mqtt://127.0.0.1:21884' },
        ],
        ...extra,
      },
    },
    { env },
  );
}

function configErrorOf(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('brokers.kind external: the stack runs no broker (README "External brokers")', () => {
  it('refuses to start without every role’s password, naming each role and saying why', () => {
    const base = tmp();
    const config = external({ credentials: { sp: { passwordFile: passwordFile(base, 'sp') } } });
    const error = configErrorOf(() => issueBrokerPasswords(config, base));
    expect(error.code).toBe('FL_ERR_CONFIG_INVALID');
    expect(error.issues.map((i) => i.key)).toEqual(['brokers.credentials.autoscaler', 'brokers.credentials.observer']);
    expect(error.issues[0]?.reason).toBe(
      "brokers.kind is external: the stack runs no broker, so it cannot generate this account's password; " +
        'set brokers.credentials.autoscaler.passwordFile (or FAULTLINE_BROKERS_CREDENTIALS_AUTOSCALER_PASSWORD_FILE) ' +
        'or .password to the password of the account "autoscaler" on your brokers',
    );
    expect(error.message.split('\n')).toHaveLength(3);
    // Nothing generated: no password the brokers could not know.
    expect(existsSync(path.join(base, '.faultline'))).toBe(false);
  });

  it('takes passwords from the file, or files named by the environment, and generates nothing', () => {
    const base = tmp();
    const env = {
      FAULTLINE_BROKERS_CREDENTIALS_AUTOSCALER_PASSWORD_FILE: passwordFile(base, 'autoscaler'),
      FAULTLINE_BROKERS_CREDENTIALS_OBSERVER_PASSWORD_FILE: passwordFile(base, 'observer'),
    };
    const config = external({ credentials: { sp: { username: 'faultline-sp', password: 'given-pw' } } }, env);
    expect(() => requireExternalBrokerPasswords(config)).not.toThrow();
    const issued = issueBrokerPasswords(config, base);
    expect(issued).toEqual({ config, env: {} });
    expect(existsSync(path.join(base, '.faultline'))).toBe(false);
  });

  it('starts no broker service: the SP nodes and the autoscalers only', async () => {
    const config = external({
      credentials: { sp: { password: 'p' }, autoscaler: { password: 'p' }, observer: { password: 'p' } },
    });
    const runDir = path.join(tmp(), 'run');
    const specs = await platformServices(config, { runDir, logDir: tmp(), configFile: '/x' }, 'postgres://x');
    expect(specs.map((spec) => spec.name)).toEqual(['sp-1', 'sp-2', 'autoscaler-a', 'autoscaler-b']);
    expect(specs.some((spec) => spec.command === 'mosquitto')).toBe(false);
    // No Mosquitto files either.
    expect(existsSync(runDir)).toBe(false);
  });

  it('says at start which brokers the services use, and warns about each not answering', async () => {
    const server = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const up = (server.address() as net.AddressInfo).port;
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const down = (closed.address() as net.AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    try {
      const config = external({
        nodes: [
          { name: 'a', url: `mqtt://127.0.0.1:${up}` },
          { name: 'b', host: '127.0.0.1', port: down },
        ],
      });
      const logger = createMemoryLogger();
      await reportExternalBrokers(config, logger);
      expect(logger.events()).toEqual(['stack.external_brokers', 'stack.external_broker_down']);
      expect(logger.records[0]?.fields.brokers).toEqual([`a@127.0.0.1:${up}`, `b@127.0.0.1:${down}`]);
      expect(logger.records[1]).toMatchObject({ level: 'warn', fields: { broker: 'b', port: down } });
      // The stack's own brokers: nothing to say.
      const own = createMemoryLogger();
      await reportExternalBrokers(resolveConfig({}, { env: {} }), own);
      expect(own.records).toEqual([]);
    } finally {
      server.close();
    }
  });

  it('shows a broker’s url in the status table, and a broker down degrades the stack', () => {
    const status: StackStatus = {
      services: [],
      sp: [{ node: 'sp-1', role: 'ACTIVE', epoch: 1, passiveLink: null, lag: null, thriftPort: 7611 }],
      brokers: [
        { name: 'a', port: 1883, up: true, url: 'mqtt://mq1.example:1883' },
        { name: 'b', port: 1884, up: false },
      ],
      clusters: [],
      actions: [],
    };
    const lines = formatStatus(status).split('\n');
    expect(lines).toContain('  a        mqtt://mq1.example:1883 up');
    expect(lines).toContain('  b        :1884   DOWN');
    expect(degraded(status)).toEqual(['broker b down']);
  });
});

describe('faultline config mosquitto: the files of an operator’s own Mosquitto', () => {
  it('writes mosquitto.conf, passwd and acl for the node (0600 in a 0700 folder), no password in clear', async () => {
    const base = tmp();
    const config = external({
      credentials: {
        sp: { passwordFile: passwordFile(base, 'sp') },
        autoscaler: { passwordFile: passwordFile(base, 'autoscaler') },
        observer: { passwordFile: passwordFile(base, 'observer') },
      },
    });
    const dir = path.join(base, 'mosquitto-b');
    const written = await exportMosquittoConfig(config, { node: 'b', dir });
    expect(written).toEqual({
      node: 'b',
      listener: '127.0.0.1:21884',
      configFile: path.join(dir, 'mosquitto.conf'),
      passwordFile: path.join(dir, 'passwd'),
      aclFile: path.join(dir, 'acl'),
      command: `mosquitto -c ${path.join(dir, 'mosquitto.conf')}`,
    });
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    for (const file of [written.configFile, written.passwordFile, written.aclFile]) {
      expect(statSync(file).mode & 0o777).toBe(0o600);
    }
    const conf = readFileSync(written.configFile, 'utf8');
    expect(conf).toContain('listener 21884 127.0.0.1');
    expect(conf).toContain('allow_anonymous false');
    const passwd = readFileSync(written.passwordFile, 'utf8');
    for (const role of ['sp', 'autoscaler', 'observer']) {
      expect(passwd).toMatch(new RegExp(`^${role}:\\$7\\$`, 'm'));
      expect(passwd).not.toContain(`${role}-password-of-a-fair-length`);
    }
    expect(readFileSync(written.aclFile, 'utf8')).toContain('pattern write instance/status/%u/+');
    expect(describeMosquittoExport(written)).toContain(`start it with: mosquitto -c ${written.configFile}`);
  });

  it('refuses an unknown node, no node, no folder, and a role without a password', async () => {
    const config = external({ credentials: { sp: { password: 'p' }, autoscaler: { password: 'p' } } });
    await expect(exportMosquittoConfig(config, { node: 'c', dir: tmp() })).rejects.toThrow(
      new UsageError('no broker node "c" in brokers.nodes (configured: a, b)'),
    );
    await expect(exportMosquittoConfig(config, { node: undefined, dir: tmp() })).rejects.toThrow(/--node NAME/);
    await expect(exportMosquittoConfig(config, { node: 'a', dir: undefined })).rejects.toThrow(/--dir DIR/);
    await expect(exportMosquittoConfig(config, { node: 'a', dir: tmp() })).rejects.toThrow(
      /brokers\.credentials\.observer: no password/,
    );
  });

  it('never changes a folder it did not make: a link, a non-empty folder, a file', async () => {
    const base = tmp();
    const config = external({
      credentials: { sp: { password: 'p' }, autoscaler: { password: 'p' }, observer: { password: 'p' } },
    });
    const full = path.join(base, 'full');
    mkdirSync(full);
    writeFileSync(path.join(full, 'mosquitto.conf'), 'keep me');
    await expect(exportMosquittoConfig(config, { node: 'a', dir: full })).rejects.toThrow(/is not empty/);
    expect(readFileSync(path.join(full, 'mosquitto.conf'), 'utf8')).toBe('keep me');
    const link = path.join(base, 'link');
    symlinkSync(full, link);
    await expect(exportMosquittoConfig(config, { node: 'a', dir: link })).rejects.toThrow(/not a folder/);
    await expect(exportMosquittoConfig(config, { node: 'a', dir: path.join(full, 'mosquitto.conf') })).rejects.toThrow(
      /not a folder/,
    );
    expect(statSync(full).mode & 0o777).not.toBe(0o700);
    // An empty folder of one's own is used.
    const empty = path.join(base, 'empty');
    mkdirSync(empty);
    await expect(exportMosquittoConfig(config, { node: 'a', dir: empty })).resolves.toMatchObject({ node: 'a' });
  });
});
