import type { ChildProcess } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { makeTestCertificates, type TestCertificates } from '@faultline/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROKER_KINDS, processesOf, stackConfig, stackDir, stackPorts, stackProbe, startStack } from './harness.js';

/*
 * The stack as `faultline stack up` starts it with TLS on for both Thrift and
 * MQTT (README "TLS": `tls.thrift` and `tls.mqtt`), on aedes and, when it is
 * installed, on Mosquitto: the members report over TLS, a killed member is
 * handled and replaced, and SIGTERM to the supervisor leaves no process of
 * the stack behind (services, Mosquitto, PostgreSQL, members, agents). Once
 * more, without the chaos, stopped as Ctrl-C in a terminal does: SIGINT to
 * the supervisor's whole process group. The same short timings as stack.test.ts.
 */
/** [broker kind, how the stack is stopped, whether a member is killed first] */
const CASES: [string, 'SIGTERM' | 'Ctrl-C', boolean][] = [
  ...BROKER_KINDS.map((kind): [string, 'SIGTERM', boolean] => [kind, 'SIGTERM', true]),
  ['aedes', 'Ctrl-C', false],
];

/** Resolves with whether the server on `port` completed a TLS handshake verified against `ca` for 127.0.0.1. */
function speaksVerifiedTls(port: number, ca: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', timeout: 3_000 });
    socket.once('secureConnect', () => {
      resolve(socket.authorized);
      socket.end();
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

describe.each(CASES)('the full stack over TLS, end to end (%s brokers, stopped by %s)', (kind, stop, chaos) => {
  let dir: string;
  let certs: TestCertificates;
  let stack: ChildProcess;
  let console_: () => string = () => '';
  let ports: number[];
  const p = (i: number) => ports[i] as number;
  const probe = stackProbe(() => dir);
  const { cli, records, actions, spawns, waitFor, status, activeMembers, threeActive } = probe;
  const spCounters = async (statusPort: number) =>
    ((await (await fetch(`http://127.0.0.1:${statusPort}/status`)).json()) as { counters: Record<string, number> })
      .counters;
  const exited = () =>
    new Promise<void>((resolve) => {
      if (stack.exitCode !== null || stack.signalCode !== null) resolve();
      else stack.once('exit', () => resolve());
    });

  beforeAll(async () => {
    certs = makeTestCertificates(`e2e-${kind}`);
    dir = stackDir('faultline-e2e-tls-');
    ports = await stackPorts();
    const files = { certFile: certs.certFile, keyFile: certs.keyFile, caFile: certs.caFile };
    const config = stackConfig(kind, ports, { tls: { thrift: files, mqtt: files } });
    ({ child: stack, console: console_ } = await startStack(dir, config, probe, { detached: true }));
    await threeActive();
  });

  afterAll(async () => {
    if (stack && stack.exitCode === null && stack.signalCode === null) {
      stack.kill('SIGTERM');
      await exited();
    }
    // Whatever a failed run left behind, so it does not outlive the suite.
    if (dir) for (const { pid } of processesOf(dir, [dir])) process.kill(pid, 'SIGKILL');
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (certs) rmSync(certs.dir, { recursive: true, force: true });
  });

  it.runIf(chaos)('members report over TLS; a killed member is handled and replaced', async () => {
    // Every agent reached the active SP over TLS: stats accepted, no failed handshake …
    const active = (await status()).sp.find((s) => s.role === 'ACTIVE');
    expect(active).toBeDefined();
    const counters = await spCounters(active?.node === 'sp-1' ? p(5) : p(8));
    expect(counters.batchesAccepted).toBeGreaterThan(0);
    expect(counters.tlsHandshakeFailures).toBe(0);
    // … and both brokers and that Thrift port complete a handshake verified against the CA.
    for (const port of [p(1), p(2), active?.thriftPort as number]) {
      expect(await speaksVerifiedTls(port, certs.ca), `TLS on port ${port}`).toBe(true);
    }

    // The member's workload (its process group) killed: its silence is a MemberFault over mqtts.
    const line = await cli('chaos', 'kill-member');
    const memberId = /member (\S+)/.exec(line)?.[1] as string;
    const removed = await waitFor(
      () => actions().find((a) => a.memberId === memberId && a.action === 'MemberRemoved'),
      'MemberRemoved',
    );
    await waitFor(
      () =>
        // The minimum rule's, or a scale up that got there first (a member killed right after it activated backs its replacement off).
        spawns().find((a) => a.clusterId === 'web' && a.timestamp >= removed.timestamp),
      'a replacement',
    );
    await waitFor(async () => {
      const members = await activeMembers();
      return members.length === 3 && !members.some((m) => m.memberId === memberId) ? true : undefined;
    }, '3 active members again, the killed one not among them');
  });

  it(`${stop}: no process of the stack is left once the supervisor exits`, async () => {
    // Everything it started, and every member, is gone once it exits.
    expect(processesOf(dir, [dir]).length).toBeGreaterThan(3);
    const stopping = Date.now();
    if (stop === 'SIGTERM') stack.kill('SIGTERM');
    else process.kill(-(stack.pid as number), 'SIGINT');
    await exited();
    const stopMs = Date.now() - stopping;
    // All at once, so a failure shows everything that went wrong.
    const events = records('supervisor').map((r) => r.event);
    expect(
      {
        exitCode: stack.exitCode,
        leftovers: processesOf(dir, [dir, certs.dir]),
        membersTerminated: events.includes('stack.members_terminated'),
        stopped: events.includes('stack.stopped'),
        controlFile: existsSync(path.join(dir, '.faultline/run/control.json')),
      },
      `the supervisor's console ended with:\n${console_().slice(-3_000)}`,
    ).toEqual({ exitCode: 0, leftovers: [], membersTerminated: true, stopped: true, controlFile: false });
    console.info(`[${kind}, ${stop}] stopped in ${stopMs} ms`);
  });
});
