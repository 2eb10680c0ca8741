import { resolveConfig } from '@faultline/core';
import { makeTestCertificates } from '@faultline/test-support';
import { describe, expect, it } from 'vitest';
import { autoscalerOptionsFrom } from './options.js';

describe('autoscalerOptionsFrom with tls.mqtt (README "TLS")', () => {
  const deps = { iaas: {} as never, registry: {} as never };
  const credentials = { autoscaler: { password: 'autoscaler-pw' } };

  it('connects over mqtts when tls.mqtt is set', () => {
    const certs = makeTestCertificates('autoscaler');
    const tls = { mqtt: { certFile: certs.certFile, keyFile: certs.keyFile, caFile: certs.caFile } };
    const options = autoscalerOptionsFrom(resolveConfig({ brokers: { credentials }, tls }, { env: {} }), deps);
    expect(options.connector).toBeTypeOf('function');
  });

  it('leaves the connector to its default (plain MQTT) when TLS is off', () => {
    const options = autoscalerOptionsFrom(resolveConfig({ brokers: { credentials } }, { env: {} }), deps);
    expect(options).not.toHaveProperty('connector');
  });
});
