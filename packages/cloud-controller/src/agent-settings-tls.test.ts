import path from 'node:path';
import { resolveConfig } from '@faultline/core';
import { agentSettingsSchema } from '@faultline/protocol';
import { describe, expect, it } from 'vitest';
import { agentSettingsFrom } from './agent-settings.js';

describe('agentSettingsFrom with TLS (README "TLS")', () => {
  it('tells the agents the CA files of tls.thrift and tls.mqtt, as absolute paths', () => {
    const files = (name: string) => ({ certFile: `${name}.pem`, keyFile: `${name}-key.pem`, caFile: `${name}-ca.pem` });
    const config = resolveConfig({ tls: { thrift: files('sp'), mqtt: files('mqtt') } }, { env: {} });
    const settings = agentSettingsFrom(config);
    expect(settings.thriftCaFile).toBe(path.resolve('sp-ca.pem'));
    expect(settings.mqttCaFile).toBe(path.resolve('mqtt-ca.pem'));
    const parsed = agentSettingsSchema.safeParse(settings);
    expect(parsed.success && parsed.data).toMatchObject({ thriftCaFile: settings.thriftCaFile });
  });

  it('names no CA file when TLS is off (the default)', () => {
    const settings = agentSettingsFrom(resolveConfig({}, { env: {} }));
    expect(settings).not.toHaveProperty('thriftCaFile');
    expect(settings).not.toHaveProperty('mqttCaFile');
  });
});
