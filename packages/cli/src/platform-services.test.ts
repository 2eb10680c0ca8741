import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { brokerPassword, resolveConfig } from '@faultline/core';
import { describe, expect, it } from 'vitest';
import { issueBrokerPasswords, platformServices } from './platform-services.js';
import { resolveServiceSpec, serviceEnv } from './service-spec.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'faultline-platform-'));
const ROLES = ['sp', 'autoscaler', 'observer'] as const;

describe('issueBrokerPasswords', () => {
  it('generates a password file (0600, folder 0700) for each role the config leaves without one, and reuses it', () => {
    const base = tmp();
    const config = resolveConfig({ brokers: { credentials: { observer: { password: 'given-pw' } } } }, { env: {} });
    const first = issueBrokerPasswords(config, base);
    const secrets = path.join(base, '.faultline', 'secrets');
    expect(statSync(secrets).mode & 0o777).toBe(0o700);
    for (const role of ['sp', 'autoscaler'] as const) {
      const file = path.join(secrets, `broker-${role}.password`);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(first.config.brokers.credentials[role]).toEqual({ username: role, passwordFile: file });
      expect(first.env[`FAULTLINE_BROKERS_CREDENTIALS_${role.toUpperCase()}_PASSWORD_FILE`]).toBe(file);
      expect(brokerPassword(first.config, role)).toBe(readFileSync(file, 'utf8').trim());
    }
    // A role the config gives a password keeps it, and gets no file.
    expect(first.config.brokers.credentials.observer).toEqual({ username: 'observer', password: 'given-pw' });
    expect(Object.keys(first.env)).toHaveLength(2);
    const passwords = ROLES.map((role) => brokerPassword(first.config, role));
    expect(new Set(passwords).size).toBe(3);
    // A restarted stack reuses them.
    const second = issueBrokerPasswords(config, base);
    expect(ROLES.map((role) => brokerPassword(second.config, role))).toEqual(passwords);
  });

  it('gives the services the files through their env, and no password in any argv or env', async () => {
    const base = tmp();
    for (const kind of ['aedes', 'mosquitto'] as const) {
      const config = resolveConfig({ brokers: { kind } }, { env: {} });
      const issued = issueBrokerPasswords(config, base);
      const runDir = path.join(base, kind, 'run');
      const specs = await platformServices(
        issued.config,
        { runDir, logDir: path.join(base, 'logs'), configFile: '/etc/faultline.yaml' },
        'postgres://x@127.0.0.1/faultline',
        issued.env,
      );
      const passwords = ROLES.map((role) => brokerPassword(issued.config, role));
      for (const spec of specs) {
        const visible = JSON.stringify([spec.command, spec.args, spec.env ?? {}]);
        for (const password of passwords) expect(visible, spec.name).not.toContain(password);
        if (spec.command === process.execPath) expect(spec.env).toMatchObject(issued.env);
      }
      if (kind === 'mosquitto') {
        const dir = path.join(runDir, 'broker-a');
        expect(statSync(dir).mode & 0o777).toBe(0o700);
        for (const file of ['mosquitto.conf', 'passwd', 'acl']) {
          expect(statSync(path.join(dir, file)).mode & 0o777, file).toBe(0o600);
        }
        const passwd = readFileSync(path.join(dir, 'passwd'), 'utf8');
        for (const role of ROLES) expect(passwd).toMatch(new RegExp(`^${role}:\\$7\\$`, 'm'));
        for (const password of passwords) expect(passwd).not.toContain(password);
      }
    }
  });

  it('runs one autoscaler service per autoscaler.nodes entry, named by its id, with --node', async () => {
    const config = resolveConfig(
      {
        autoscaler: {
          nodes: [
            { id: 'as-x', healthPort: 7001 },
            { id: 'as-y', healthPort: 7002 },
          ],
        },
      },
      { env: {} },
    );
    const specs = await platformServices(config, { runDir: tmp(), logDir: tmp(), configFile: '/x' }, 'postgres://x');
    expect(specs.map((spec) => spec.name)).toEqual(['broker-a', 'broker-b', 'sp-1', 'sp-2', 'as-x', 'as-y']);
    for (const id of ['as-x', 'as-y']) {
      const spec = specs.find((s) => s.name === id);
      expect(spec?.args.slice(-2)).toEqual(['--node', id]);
      expect(spec?.args[0]).toMatch(/packages\/autoscaler\/dist\/main\.js$/);
    }
  });

  it('tells the autoscalers alone where the members’ folders and scripts moved', async () => {
    const config = resolveConfig({}, { env: {} });
    const autoscalerEnv = {
      FAULTLINE_CLOUD_CONTROLLER_LOCAL_MEMBERS_DIR: '/srv/state/members',
      FAULTLINE_CLOUD_CONTROLLER_LOCAL_RUNTIME_DIR: '/srv/state/runtime',
    };
    const specs = await platformServices(
      config,
      { runDir: tmp(), logDir: tmp(), configFile: '/x', autoscalerEnv },
      'postgres://x',
    );
    const autoscalers = config.autoscaler.nodes.map((node) => node.id);
    for (const spec of specs) {
      if (autoscalers.includes(spec.name)) expect(spec.env).toMatchObject(autoscalerEnv);
      else expect(Object.keys(spec.env ?? {}).filter((key) => key.startsWith('FAULTLINE_CLOUD'))).toEqual([]);
    }
    expect(specs.map((spec) => spec.name)).toEqual(expect.arrayContaining(['autoscaler-a', 'autoscaler-b']));
  });

  it('gives Mosquitto a minimal environment, not the supervisor’s', async () => {
    const config = resolveConfig({ brokers: { kind: 'mosquitto' } }, { env: {} });
    const issued = issueBrokerPasswords(config, tmp());
    const specs = await platformServices(
      issued.config,
      { runDir: tmp(), logDir: tmp(), configFile: '/x' },
      'postgres://x',
      issued.env,
    );
    const mosquitto = specs.filter((spec) => spec.command === 'mosquitto');
    expect(mosquitto).toHaveLength(2);
    for (const spec of mosquitto) {
      const env = serviceEnv(resolveServiceSpec(spec), {
        PATH: '/usr/bin',
        LANG: 'C.UTF-8',
        AWS_SECRET_ACCESS_KEY: 'x',
      });
      expect(env).toEqual({ PATH: '/usr/bin', LANG: 'C.UTF-8' });
    }
  });

  it('finds an SP node ready only when its status names it, not another process on its port', async () => {
    let nodeId = 'sp-9';
    const server = http.createServer((_, res) => res.end(JSON.stringify({ nodeId, role: 'PASSIVE' })));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const statusPort = (server.address() as AddressInfo).port;
      const base = resolveConfig({}, { env: {} });
      const node = { ...(base.streamProcessor.nodes[0] as (typeof base.streamProcessor.nodes)[number]), statusPort };
      const config = { ...base, streamProcessor: { ...base.streamProcessor, nodes: [node] } };
      const specs = await platformServices(config, { runDir: tmp(), logDir: tmp(), configFile: '/x' }, 'postgres://x');
      const sp = specs.find((spec) => spec.name === 'sp-1');
      expect(await sp?.ready(AbortSignal.timeout(2_000))).toBe(false);
      nodeId = 'sp-1';
      expect(await sp?.ready(AbortSignal.timeout(2_000))).toBe(true);
    } finally {
      server.close();
    }
  });

  it('refuses, naming the key, a configured password file that is unsafe', async () => {
    const config = resolveConfig(
      { brokers: { kind: 'mosquitto', credentials: { sp: { passwordFile: '/nonexistent/sp.password' } } } },
      { env: {} },
    );
    const issued = issueBrokerPasswords(config, tmp());
    await expect(
      platformServices(issued.config, { runDir: tmp(), logDir: tmp(), configFile: '/x' }, 'postgres://x', issued.env),
    ).rejects.toThrow(/brokers\.credentials\.sp\.passwordFile/);
  });
});
