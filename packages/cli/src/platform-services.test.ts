import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { brokerPassword, resolveConfig } from '@faultline/core';
import { describe, expect, it } from 'vitest';
import { issueBrokerPasswords, platformServices } from './platform-services.js';

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

  it('tells the autoscaler alone where the members’ folders and scripts moved', async () => {
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
    for (const spec of specs) {
      if (spec.name === 'autoscaler') expect(spec.env).toMatchObject(autoscalerEnv);
      else expect(Object.keys(spec.env ?? {}).filter((key) => key.startsWith('FAULTLINE_CLOUD'))).toEqual([]);
    }
    expect(specs.map((spec) => spec.name)).toContain('autoscaler');
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
