import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '@faultline/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BROKER_KINDS, processesOf, stackConfig, stackDir, stackPorts, stackProbe, startStack } from './harness.js';

/*
 * `brokers.kind: external` (README "External brokers"): two Mosquitto brokers
 * started here, outside the stack, as an operator runs their own, from the
 * files `faultline config mosquitto` writes (the platform accounts with the
 * configured passwords, the ACL). The stack starts no broker, its services
 * use these two, a killed member is handled and replaced, `stack status`
 * probes both; one stopped, status says it is DOWN and exits 3 (degraded),
 * and a fault is still handled through the other.
 */

const run = promisify(execFile);
const CLI = path.join(REPO_ROOT, 'packages/cli/dist/main.js');
const ROLES = ['sp', 'autoscaler', 'observer'] as const;

interface Status {
  services: { name: string; state: string }[];
  brokers: { name: string; port: number; up: boolean; url?: string }[];
  degraded: string[];
}

/** Whether something accepts connections on 127.0.0.1:port. */
const answers = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

describe.runIf(BROKER_KINDS.includes('mosquitto'))('the full stack on two external Mosquitto brokers', () => {
  let dir: string;
  /** The operator's side: Mosquitto's files and logs, the accounts' password files. */
  let opsDir: string;
  let stack: ChildProcess;
  const mosquittos = new Map<string, ChildProcess>();
  let ports: number[];
  const p = (i: number) => ports[i] as number;
  const probe = stackProbe(() => dir);
  const { cli, records, actions, spawns, waitFor, activeMembers, threeActive } = probe;

  /** `stack status --json` and its exit code (3: degraded). */
  const statusOf = async (): Promise<{ code: number; status: Status; stderr: string }> => {
    try {
      const { stdout, stderr } = await run(process.execPath, [CLI, 'stack', 'status', '--json'], { cwd: dir });
      return { code: 0, status: JSON.parse(stdout) as Status, stderr };
    } catch (error) {
      const failed = error as { code?: number; stdout?: string; stderr?: string };
      if (failed.code !== 3 || failed.stdout === undefined) throw error;
      return { code: 3, status: JSON.parse(failed.stdout) as Status, stderr: failed.stderr ?? '' };
    }
  };

  /** `mosquitto -c <its config>`, as the operator starts it; resolved once it accepts connections. */
  const startMosquitto = async (name: string, configFile: string, port: number) => {
    const log = openSync(path.join(opsDir, `mosquitto-${name}.log`), 'a', 0o600);
    const child = spawn('mosquitto', ['-c', configFile], { cwd: opsDir, stdio: ['ignore', log, log] });
    mosquittos.set(name, child);
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`mosquitto ${name} exited (${child.exitCode})`);
      return answers(port);
    }, `mosquitto ${name} listening`);
  };

  const stopMosquitto = async (name: string) => {
    const child = mosquittos.get(name);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  };

  beforeAll(async () => {
    dir = stackDir('faultline-e2e-external-');
    opsDir = mkdtempSync(path.join(os.tmpdir(), 'faultline-e2e-mosquitto-'));
    ports = await stackPorts();
    // The accounts the operator created on their brokers: every role's password given (the stack makes none up).
    const credentials = Object.fromEntries(
      ROLES.map((role) => {
        const file = path.join(opsDir, `${role}.password`);
        writeFileSync(file, `${role}-${Math.random().toString(36).slice(2)}-of-a-fair-length-0123456789\n`, {
          mode: 0o600,
        });
        return [role, { passwordFile: file }];
      }),
    );
    const config = stackConfig('external', ports, {
      brokers: {
        kind: 'external',
        nodes: [
          { name: 'a', url: `mqtt://127.0.0.1:${p(1)}` },
          { name: 'b', url: `mqtt://127.0.0.1:${p(2)}` },
        ],
        credentials,
      },
    });
    // The operator's Mosquitto files, from the same configuration.
    const file = path.join(dir, 'faultline.yaml');
    writeFileSync(file, JSON.stringify(config));
    for (const [name, port] of [
      ['a', p(1)],
      ['b', p(2)],
    ] as const) {
      const { stdout } = await run(process.execPath, [
        CLI,
        'config',
        'mosquitto',
        '--config',
        file,
        '--node',
        name,
        '--dir',
        path.join(opsDir, `broker-${name}`),
        '--json',
      ]);
      const written = JSON.parse(stdout) as { configFile: string; listener: string };
      expect(written.listener).toBe(`127.0.0.1:${port}`);
      await startMosquitto(name, written.configFile, port);
    }
    ({ child: stack } = await startStack(dir, config, probe, { detached: true }));
    await threeActive();
  });

  afterAll(async () => {
    if (stack && stack.exitCode === null && stack.signalCode === null) {
      const exited = new Promise((resolve) => stack.once('exit', resolve));
      stack.kill('SIGTERM');
      await exited;
    }
    // Whatever a failed run left behind, so it does not outlive the suite.
    if (dir) for (const { pid } of processesOf(dir, [dir])) process.kill(pid, 'SIGKILL');
    for (const name of mosquittos.keys()) await stopMosquitto(name);
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (opsDir) rmSync(opsDir, { recursive: true, force: true });
  });

  it('starts no broker: the supervisor runs PostgreSQL, the SP pair and the autoscaler pair only', async () => {
    const { code, status } = await statusOf();
    expect(status.services.map((s) => s.name)).toEqual(['postgres', 'sp-1', 'sp-2', 'autoscaler-a', 'autoscaler-b']);
    // No process of the stack is a broker: neither a Mosquitto nor Faultline's own broker node.
    const brokers = processesOf(dir).filter((proc) => /mosquitto|broker\/dist\/main\.js/.test(proc.cmdline));
    expect(brokers).toEqual([]);
    // Both external brokers probed and up; nothing degraded.
    expect(status.brokers).toEqual([
      { name: 'a', port: p(1), up: true, url: `mqtt://127.0.0.1:${p(1)}` },
      { name: 'b', port: p(2), up: true, url: `mqtt://127.0.0.1:${p(2)}` },
    ]);
    expect({ code, degraded: status.degraded }).toEqual({ code: 0, degraded: [] });
    expect(records('supervisor').map((r) => r.event)).toContain('stack.external_brokers');
    // Nothing to kill for chaos: the brokers are not the stack's.
    await expect(cli('chaos', 'kill-broker', 'a')).rejects.toThrow(/no running broker a/);
  });

  it('uses the external brokers: a member whose agent died is faulted, terminated and replaced', async () => {
    // Its instance keeps running, so nothing but a MemberFault from the SP to the autoscaler, through
    // these brokers, can have it terminated (a killed member would be found gone by reconciliation).
    const line = await cli('chaos', 'kill-agent');
    const memberId = /\b(web-[a-z0-9]+)/.exec(line)?.[1] as string;
    await waitFor(
      () => actions().find((a) => a.memberId === memberId && a.action === 'MemberTerminateAction'),
      'MemberTerminateAction on its MemberFault',
    );
    const removed = await waitFor(
      () => actions().find((a) => a.memberId === memberId && a.action === 'MemberRemoved'),
      'MemberRemoved',
    );
    await waitFor(
      () => spawns().find((a) => a.clusterId === 'web' && a.timestamp >= removed.timestamp),
      'a replacement',
    );
    await waitFor(async () => {
      const members = await activeMembers();
      return members.length === 3 && !members.some((m) => m.memberId === memberId) ? true : undefined;
    }, '3 active members again, the killed one not among them');
    // Members have no account on these brokers (README "External brokers"): the autoscaler activated
    // them through its own probe of their workload, not on an InstanceActivatedEvent.
    expect(records('autoscaler').some((r) => r.event === 'autoscaler.member_active_by_probe')).toBe(true);
    const mosquittoA = readFileSync(path.join(opsDir, 'mosquitto-a.log'), 'utf8');
    for (const role of ['sp', 'autoscaler']) expect(mosquittoA).toMatch(new RegExp(`\\bu'${role}'`));
    // The agents' logins, refused (Mosquitto names no client in that line).
    expect(mosquittoA).toContain('disconnected, not authorised');
  });

  it('one external broker stopped: status reports it DOWN and exits 3; a fault is still handled through the other', async () => {
    await stopMosquitto('b');
    const { code, status, stderr } = await waitFor(async () => {
      const answer = await statusOf();
      return answer.status.brokers.find((b) => b.name === 'b')?.up === false ? answer : undefined;
    }, 'broker b reported down');
    expect(code).toBe(3);
    expect(status.degraded).toContain('broker b down');
    expect(status.brokers.find((b) => b.name === 'a')?.up).toBe(true);
    expect(stderr).toBe('');
    // The table says so too, and the supervisor restarted nothing of its own.
    const table = await cli('stack', 'status');
    expect(table).toMatch(new RegExp(`b\\s+mqtt://127\\.0\\.0\\.1:${p(2)} DOWN`));
    expect(status.services.every((s) => s.state === 'up')).toBe(true);

    // Again a MemberFault alone: it travels through broker a.
    const line = await cli('chaos', 'kill-agent');
    const memberId = /\b(web-[a-z0-9]+)/.exec(line)?.[1] as string;
    await waitFor(
      () => actions().find((a) => a.memberId === memberId && a.action === 'MemberTerminateAction'),
      "MemberTerminateAction during broker b's outage",
    );
    await threeActive();
  });
});
