import { type ChildProcess, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createMemoryLogger } from '@faultline/core/testing';
import type { AgentSettings } from '@faultline/protocol';
import { TEST_MEMBER_KEY, testMember } from '@faultline/protocol/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { AGENT_METRICS_PORT_FILE, readAgentPortFile } from './agent-targets.js';
import type { Launcher, LaunchRequest } from './launcher.js';
import { createLocalIaas } from './local-iaas.js';
import type { LocalIaasOptions } from './local-iaas-options.js';
import { linuxSocketTable, parseListeningSockets, type SocketTable } from './socket-table.js';
import { FakeProcessTable, FakeSocketTable } from './testing/index.js';

/*
 * README "Operations → Agent metrics": the agent target folder is the
 * driver's. A member (every member runs as one shared user) only records its
 * agent's port in its own folder; discover() writes a member's target only
 * when that port is a socket its recorded agent process listens on, with the
 * driver's host and labels, and removes everything else from the folder.
 */

const agent: AgentSettings = {
  spEndpoints: [{ host: '127.0.0.1', port: 7611 }],
  brokers: [{ name: 'a', host: '127.0.0.1', port: 1883 }],
};

/** Workload pid N leads group N, its agent is N + 1 (or `agentPids`' next entry: a real process). */
class FakeLauncher implements Launcher {
  next = 1_000;
  readonly agentPids: number[] = [];
  constructor(private readonly table: FakeProcessTable) {}
  async launch(request: LaunchRequest) {
    const pid = this.next;
    this.next += 10;
    this.table.add({ pid });
    request.onStarted?.(pid);
    const agentPid = this.agentPids.shift() ?? pid + 1;
    this.table.add({ pid: agentPid, pgid: pid });
    // The real launcher makes the member's folder; its agent writes its port file there.
    mkdirSync(request.workDir, { recursive: true });
    return { pid, port: 40_000 + pid, agentPid };
  }
}

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function setup(extra: Partial<LocalIaasOptions> & { sockets?: SocketTable } = {}) {
  const table = new FakeProcessTable();
  const launcher = new FakeLauncher(table);
  const sockets = new FakeSocketTable();
  const logger = createMemoryLogger();
  const runDir = mkdtempSync(path.join(os.tmpdir(), 'faultline-targets-'));
  cleanups.push(() => rmSync(runDir, { recursive: true, force: true }));
  const { sockets: socketTable, ...rest } = extra;
  const iaas = createLocalIaas({
    runDir,
    agent,
    memberKey: TEST_MEMBER_KEY,
    processTable: table,
    socketTable: socketTable ?? sockets,
    launcher,
    logger,
    ...rest,
  });
  const dir = path.join(runDir, 'agent-targets');
  /** What the member's agent would write: its port, in its own folder. */
  const recordPort = (memberId: string, text: string) =>
    writeFileSync(path.join(runDir, `member-${memberId}`, AGENT_METRICS_PORT_FILE), text);
  const spawnMember = async (memberId: string) => iaas.spawn({ ...testMember(memberId), cartridgeType: 'php' });
  const targetOf = (memberId: string) => JSON.parse(readFileSync(path.join(dir, `agent-${memberId}.json`), 'utf8'));
  return { iaas, table, launcher, sockets, logger, runDir, dir, recordPort, spawnMember, targetOf };
}

const labels = (memberId: string) => ({
  member: memberId,
  cluster: 'php',
  cluster_instance: 'php-1',
  network_partition: 'np-1',
  partition: 'p-1',
});

describe('agent target files (README "Operations → Agent metrics")', () => {
  it('writes a live member’s target from its recorded port and the driver’s own labels: 0644 in a 0755 folder', async () => {
    const { iaas, sockets, dir, recordPort, spawnMember, targetOf, logger } = setup();
    await spawnMember('m-1');
    // Before its agent recorded a port: nothing to name, nothing refused.
    await iaas.discover();
    expect(readdirSync(dir)).toEqual([]);
    expect(iaas.counters.targetsRefused).toBe(0);

    sockets.listen(1_001, 41_234);
    recordPort('m-1', '41234\n');
    await iaas.discover();
    expect(targetOf('m-1')).toEqual([{ targets: ['127.0.0.1:41234'], labels: labels('m-1') }]);
    expect(readdirSync(dir)).toEqual(['agent-m-1.json']);
    expect(statSync(dir).mode & 0o7777).toBe(0o755);
    expect(statSync(path.join(dir, 'agent-m-1.json')).mode & 0o7777).toBe(0o644);
    expect(statSync(dir).uid).toBe(process.geteuid?.());
    expect(statSync(path.join(dir, 'agent-m-1.json')).uid).toBe(process.geteuid?.());
    expect(iaas.counters.targetsWritten).toBe(1);
    expect(logger.records.find((r) => r.event === 'local_iaas.target_written')?.fields).toMatchObject({
      memberId: 'm-1',
      target: '127.0.0.1:41234',
    });
    // A file already right is left as it is: Prometheus re-reads only what changed.
    const { ino } = statSync(path.join(dir, 'agent-m-1.json'));
    await iaas.discover();
    expect(statSync(path.join(dir, 'agent-m-1.json')).ino).toBe(ino);
    expect(iaas.counters.targetsWritten).toBe(1);
    // The folder is its own: no member user is ever made its owner.
    expect(iaas.counters.targetFileFailed).toBe(0);
  });

  it('removes or rewrites whatever else is in the folder, and passes none of it on', async () => {
    const { iaas, sockets, dir, recordPort, spawnMember, targetOf, runDir, logger } = setup();
    await spawnMember('m-1');
    sockets.listen(1_001, 41_234);
    recordPort('m-1', '41234\n');
    mkdirSync(dir, { recursive: true });
    const hostile = (name: string, address: string, extra: Record<string, string> = {}) =>
      writeFileSync(
        path.join(dir, name),
        JSON.stringify([{ targets: [address], labels: { ...labels('m-1'), ...extra } }]),
      );
    // SSRF from the Prometheus host, a path and parameters of the member's choosing.
    hostile('evil.json', '169.254.169.254:80', { __metrics_path__: '/latest/meta-data', __param_x: 'y' });
    // Its own name, another target: rewritten.
    hostile('agent-m-1.json', '10.0.0.1:22', { job: 'faultline', __scheme__: 'https' });
    // Another member's name (one the driver does not run), and a series spoofer.
    hostile('agent-m-2.json', '127.0.0.1:7811', { member: 'm-2' });
    // What an agent killed mid-write (or a driver) leaves, and a link to a file of the platform's.
    writeFileSync(path.join(dir, '.agent-m-9.json.77.tmp'), '[{"targets":');
    const secret = path.join(runDir, 'platform-secret');
    writeFileSync(secret, 'keep me');
    symlinkSync(secret, path.join(dir, 'agent-link.json'));
    symlinkSync('/nonexistent', path.join(dir, 'agent-m-3.json'));
    linkSync(secret, path.join(dir, 'hard.json'));
    mkdirSync(path.join(dir, 'empty.json'));

    const sync = await iaas.syncAgentTargets();
    expect(readdirSync(dir)).toEqual(['agent-m-1.json']);
    expect(targetOf('m-1')).toEqual([{ targets: ['127.0.0.1:41234'], labels: labels('m-1') }]);
    expect(sync.targets).toEqual(['m-1']);
    expect(sync.removed.sort()).toEqual(
      [
        '.agent-m-9.json.77.tmp',
        'agent-link.json',
        'agent-m-2.json',
        'agent-m-3.json',
        'empty.json',
        'evil.json',
        'hard.json',
      ].sort(),
    );
    // Links were removed, never followed.
    expect(readFileSync(secret, 'utf8')).toBe('keep me');
    expect(iaas.counters.targetsRemoved).toBe(7);
    expect(logger.records.find((r) => r.fields.name === 'agent-m-2.json')?.fields).toMatchObject({
      event: 'local_iaas.target_removed',
      reason: 'its member is not running',
    });
    expect(logger.records.find((r) => r.fields.name === '.agent-m-9.json.77.tmp')?.fields.reason).toBe('a temp file');

    // A folder it cannot remove (not empty) is said and counted, and never written through.
    mkdirSync(path.join(dir, 'nested.json'));
    writeFileSync(path.join(dir, 'nested.json', 'x'), '');
    await iaas.discover();
    expect(iaas.counters.targetFileFailed).toBe(1);
    expect(logger.events()).toContain('local_iaas.target_file_failed');
    expect(readdirSync(dir).sort()).toEqual(['agent-m-1.json', 'nested.json']);
  });

  it('refuses a recorded port that is not a socket its agent listens on, and a port file that is not a port', async () => {
    const { iaas, sockets, dir, recordPort, spawnMember, logger, runDir } = setup();
    await spawnMember('m-1');
    const refusals = () => logger.records.filter((r) => r.event === 'local_iaas.target_refused');
    // A port another process listens on (the SP's status port, say): never named for this member.
    sockets.listen(4_242, 7_811);
    recordPort('m-1', '7811\n');
    await iaas.discover();
    expect(existsSync(dir) && readdirSync(dir)).toEqual([]);
    expect(refusals().map((r) => r.fields)).toEqual([
      expect.objectContaining({
        memberId: 'm-1',
        port: 7_811,
        agentPid: 1_001,
        reason: 'port 7811 is not a socket its agent listens on at 127.0.0.1',
      }),
    ]);
    expect(iaas.counters.targetsRefused).toBe(1);
    // Said once per member and reason, not at every sync.
    await iaas.discover();
    expect(iaas.counters.targetsRefused).toBe(1);

    // Its agent's, but bound elsewhere than the target would name (another process may own 127.0.0.1:7812).
    sockets.listen(1_001, 7_812, '127.0.0.2');
    recordPort('m-1', '7812\n');
    await iaas.discover();
    expect(readdirSync(dir)).toEqual([]);
    expect(refusals().at(-1)?.fields.reason).toBe('port 7812 is not a socket its agent listens on at 127.0.0.1');

    const portFile = path.join(runDir, 'member-m-1', AGENT_METRICS_PORT_FILE);
    for (const [text, reason] of [
      ['0\n', 'its port file holds port 0 is not within 1-65535'],
      ['65536', 'its port file holds port 65536 is not within 1-65535'],
      ['80 # and labels', 'its port file holds not a port number'],
      ['x'.repeat(100), 'its port file is larger than 16 bytes'],
    ] as const) {
      recordPort('m-1', text);
      await iaas.discover();
      expect(refusals().at(-1)?.fields.reason).toBe(reason);
    }
    // A link (to another member's or the platform's file) is not followed; a hard link is refused.
    const elsewhere = path.join(runDir, 'elsewhere');
    writeFileSync(elsewhere, '7812\n');
    rmSync(portFile);
    symlinkSync(elsewhere, portFile);
    expect(await readAgentPortFile(portFile)).toBe('its port file cannot be opened (ELOOP)');
    rmSync(portFile);
    linkSync(elsewhere, portFile);
    expect(await readAgentPortFile(portFile)).toBe('its port file has 2 links');
    rmSync(portFile);
    mkdirSync(portFile);
    expect(await readAgentPortFile(portFile)).toBe('its port file is not a regular file');
    expect(readdirSync(dir)).toEqual([]);
    expect(iaas.counters.targetsWritten).toBe(0);
  });

  it('removes a dead agent’s target at the next sync, and a stopped member’s at once', async () => {
    const { iaas, table, sockets, dir, recordPort, spawnMember, logger } = setup();
    await spawnMember('m-1');
    await spawnMember('m-2');
    sockets.listen(1_001, 41_001);
    sockets.listen(1_011, 41_011);
    recordPort('m-1', '41001\n');
    recordPort('m-2', '41011\n');
    await iaas.discover();
    expect(readdirSync(dir).sort()).toEqual(['agent-m-1.json', 'agent-m-2.json']);

    // Its agent killed alone (SIGKILL): its port file stays, its port is free for anyone to take.
    table.exit(1_001);
    sockets.closeAll(1_001);
    await iaas.discover();
    expect(readdirSync(dir)).toEqual(['agent-m-2.json']);
    expect(logger.records.find((r) => r.event === 'local_iaas.target_refused')?.fields).toMatchObject({
      memberId: 'm-1',
      reason: 'its agent is not running',
    });
    // Its pid taken by another process, which listens on the recorded port: not the agent.
    table.add({ pid: 1_001, startTime: 1 });
    sockets.listen(1_001, 41_001);
    await iaas.discover();
    expect(readdirSync(dir)).toEqual(['agent-m-2.json']);

    // Terminated: its file goes with it, before any sync.
    expect((await iaas.terminate('m-2')).outcome).toBe('terminated');
    expect(readdirSync(dir)).toEqual([]);
  });

  it('names no target with metrics off, and a driver without agent settings leaves the folder alone', async () => {
    const off = setup({ agent: { ...agent, metrics: false } });
    await off.spawnMember('m-1');
    off.sockets.listen(1_001, 41_001);
    off.recordPort('m-1', '41001\n');
    mkdirSync(off.dir);
    writeFileSync(path.join(off.dir, 'agent-m-1.json'), '[]');
    await off.iaas.discover();
    expect(readdirSync(off.dir)).toEqual([]);

    // A CLI's driver (adopt and terminate only): the folder is the spawning driver's business.
    const spawning = setup();
    await spawning.spawnMember('m-1');
    spawning.sockets.listen(1_001, 41_001);
    spawning.recordPort('m-1', '41001\n');
    await spawning.iaas.discover();
    const bare = createLocalIaas({
      runDir: spawning.runDir,
      processTable: spawning.table,
      socketTable: spawning.sockets,
    });
    expect(await bare.discover()).toHaveLength(1);
    expect(readdirSync(spawning.dir)).toEqual(['agent-m-1.json']);
    // Nor does a closed driver (its node stepped down) touch it.
    await spawning.iaas.close();
    await expect(spawning.iaas.syncAgentTargets()).rejects.toMatchObject({ code: 'FL_ERR_CLOSED' });
    expect(readdirSync(spawning.dir)).toEqual(['agent-m-1.json']);
  });

  it('looks at a bounded number of entries per sync; the rest are swept by the next ones', async () => {
    const { iaas, dir, spawnMember } = setup({ discoverMaxRecords: 5 });
    await spawnMember('m-1');
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < 12; i++) writeFileSync(path.join(dir, `stray-${i}.json`), '[]');
    await iaas.discover();
    expect(readdirSync(dir)).toHaveLength(7);
    expect(iaas.counters.targetsDirTruncated).toBe(1);
    await iaas.discover();
    await iaas.discover();
    expect(readdirSync(dir)).toEqual([]);
  });

  it.runIf(process.geteuid?.() === 0)(
    'takes back a folder an earlier version left to the member user (run as root)',
    async () => {
      const { iaas, sockets, dir, recordPort, spawnMember, logger } = setup();
      await spawnMember('m-1');
      sockets.listen(1_001, 41_234);
      recordPort('m-1', '41234\n');
      // As the earlier version left it: the member user's (any unprivileged uid), and what a member wrote in it.
      mkdirSync(dir);
      chownSync(dir, 65_534, 65_534);
      chmodSync(dir, 0o777);
      writeFileSync(path.join(dir, 'agent-m-1.json'), '[]');
      chownSync(path.join(dir, 'agent-m-1.json'), 65_534, 65_534);
      await iaas.discover();
      const stat = lstatSync(dir);
      expect([stat.uid, stat.gid, stat.mode & 0o7777]).toEqual([0, process.getegid?.(), 0o755]);
      expect(statSync(path.join(dir, 'agent-m-1.json')).uid).toBe(0);
      expect(iaas.counters.targetsDirRepaired).toBe(1);
      expect(logger.events()).toContain('local_iaas.target_dir_repaired');
    },
  );
});

describe('the Linux socket table', () => {
  /** A process of its own listening on loopback; resolves with its pid and port. */
  const listener = async (): Promise<{ child: ChildProcess; port: number }> => {
    const child = spawn(
      process.execPath,
      ['-e', "const s=require('net').createServer().listen(0,'127.0.0.1',()=>console.log(s.address().port))"],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    cleanups.push(() => child.kill('SIGKILL'));
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout?.once('data', (data: Buffer) => resolve(Number(String(data).trim())));
      child.once('exit', (code) => reject(new Error(`listener exited (${code})`)));
    });
    return { child, port };
  };

  it('tells a port of the agent’s own process from a port another process opened', async () => {
    const agentProcess = await listener();
    const other = await listener();
    const { iaas, launcher, recordPort, spawnMember, dir, logger } = setup({ sockets: linuxSocketTable });
    // The member's agent is a real process here (its liveness still comes from the fake table).
    launcher.agentPids.push(agentProcess.child.pid as number);
    await spawnMember('m-1');
    recordPort('m-1', `${other.port}\n`);
    await iaas.discover();
    expect(existsSync(dir) && readdirSync(dir)).toEqual([]);
    expect(logger.records.find((r) => r.event === 'local_iaas.target_refused')?.fields.reason).toBe(
      `port ${other.port} is not a socket its agent listens on at 127.0.0.1`,
    );
    recordPort('m-1', `${agentProcess.port}\n`);
    await iaas.discover();
    expect(readdirSync(dir)).toEqual(['agent-m-1.json']);
  });

  it('lists this process’s listening socket with its inode among its descriptors', async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    const { port } = server.address() as net.AddressInfo;
    const inodes = await linuxSocketTable.socketInodes(process.pid, 100_000);
    if (typeof inodes === 'string') throw new Error(inodes);
    const { sockets } = await linuxSocketTable.listening();
    const mine = sockets.filter((s) => s.port === port && inodes.has(s.inode));
    expect(mine).toEqual([{ inode: expect.any(Number), family: 'ipv4', address: '127.0.0.1', port }]);
    expect(await linuxSocketTable.socketInodes(process.pid, 1)).toMatch(/^it has more than 1 open descriptors$/);
    expect(await linuxSocketTable.socketInodes(2 ** 22 + 1, 10)).toBe('its descriptors cannot be read (ENOENT)');
  });

  it('parses /proc/net/tcp and tcp6 lines: listening sockets only', () => {
    const le = os.endianness() === 'LE';
    const v4 = le ? '0100007F' : '7F000001';
    const v6loop = le ? '00000000000000000000000001000000' : '00000000000000000000000000000001';
    const header = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
    const tcp = [
      header,
      `   0: ${v4}:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 4242 1 0 100 0 0 10 0\n`,
      // Established: not listening.
      `   1: ${v4}:1F91 ${v4}:D431 01 00000000:00000000 00:00000000 00000000   999        0 4243 1 0 20 4 30 10 -1\n`,
      `   2: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 17 1 0 100 0 0 10 0\n`,
      '   3: garbage\n',
    ].join('');
    expect(parseListeningSockets(tcp, 'ipv4')).toEqual([
      { inode: 4242, family: 'ipv4', address: '127.0.0.1', port: 8080 },
      { inode: 17, family: 'ipv4', address: '0.0.0.0', port: 80 },
    ]);
    const tcp6 = `${header}   0: ${v6loop}:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   999        0 55 1 0 100 0 0 10 0\n`;
    expect(parseListeningSockets(tcp6, 'ipv6')).toEqual([
      { inode: 55, family: 'ipv6', address: '0:0:0:0:0:0:0:1', port: 8080 },
    ]);
    // An IPv4 address in the tcp6 table (or the reverse) is not one.
    expect(parseListeningSockets(tcp6, 'ipv4')).toEqual([]);
  });
});
