import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ProcessTable } from '@faultline/cloud-controller';
import { type Clock, type Logger, mkdirPrivate, sleep } from '@faultline/core';
import { groupSince } from './process-table.js';

/** One running platform service as the supervisor started it. */
export interface ServiceRecord {
  name: string;
  pid: number;
  /** Field 22 of /proc/<pid>/stat: with the pid and the boot, it names this process and no later one. */
  startTime: number;
  bootId: string;
  /** What stops it cleanly: SIGTERM (runMain), SIGINT (PostgreSQL's fast shutdown). */
  stopSignal: NodeJS.Signals;
}

/**
 * The pids and start times of the services a supervisor runs, kept in a file
 * of the run folder (`.faultline/run/services.json`, mode 0600) as it starts
 * and loses them. When a supervisor dies without stopping them (kill -9), the
 * next `stack up` reads it and stops those still alive (stopLeftovers) before
 * it starts its own, so no second autoscaler pair runs beside an orphan.
 */
export class ServiceRecords {
  private readonly records = new Map<string, ServiceRecord>();

  constructor(
    readonly file: string,
    private readonly table: ProcessTable,
  ) {}

  /** What a previous supervisor left in the file: [] when none, or when the file is not ours to read. */
  read(): ServiceRecord[] {
    if (!existsSync(this.file)) return [];
    try {
      const parsed = JSON.parse(readFileSync(this.file, 'utf8')) as unknown;
      return Array.isArray(parsed) ? parsed.filter(isRecord) : [];
    } catch {
      return [];
    }
  }

  /** A service started as `pid` (its start time read now); false when it is already gone. */
  add(name: string, pid: number, stopSignal: NodeJS.Signals): boolean {
    const stat = this.table.stat(pid);
    if (!stat) return false;
    this.records.set(name, { name, pid, startTime: stat.startTime, bootId: this.table.bootId(), stopSignal });
    this.write();
    return true;
  }

  /** The service's process `pid` is gone (a later start of the same service keeps its own record). */
  remove(name: string, pid: number): void {
    if (this.records.get(name)?.pid !== pid) return;
    this.records.delete(name);
    this.write();
  }

  /** Forgets everything: the file is written empty (this supervisor runs nothing yet). */
  clear(): void {
    this.records.clear();
    this.write();
  }

  private write(): void {
    mkdirPrivate(path.dirname(this.file));
    // Whole or not at all: a supervisor killed mid-write leaves the previous file.
    const temporary = `${this.file}.${process.pid}.tmp`;
    writeFileSync(temporary, JSON.stringify([...this.records.values()]), { mode: 0o600 });
    renameSync(temporary, this.file);
  }
}

function isRecord(value: unknown): value is ServiceRecord {
  const r = value as Partial<ServiceRecord> | null;
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof r.name === 'string' &&
    Number.isSafeInteger(r.pid) &&
    (r.pid as number) > 1 &&
    Number.isSafeInteger(r.startTime) &&
    typeof r.bootId === 'string' &&
    typeof r.stopSignal === 'string'
  );
}

export interface StopLeftoversOptions {
  table: ProcessTable;
  clock: Clock;
  logger: Logger;
  /** From the stop signal to SIGKILL. */
  graceMs: number;
  /** How often a stopping process is looked for. @default 100 */
  pollMs?: number;
  /**
   * Services left alone: PostgreSQL, which stopLeftoverPostmaster stops with
   * care (SIGINT, SIGQUIT, its backends before any SIGKILL). @default none
   */
  skip?: readonly string[];
}

/** Whether the recorded process is still the one that runs under its pid. */
function alive(table: ProcessTable, record: ServiceRecord): boolean {
  const stat = table.stat(record.pid);
  return stat !== undefined && stat.state !== 'Z' && stat.startTime === record.startTime;
}

/**
 * What is left of a recorded service's process group: its members no older
 * than the service, each to be signalled by pid. None when its pid now names
 * another process: that one may lead a group of the same number.
 */
function leftOfGroup(table: ProcessTable, record: ServiceRecord): number[] {
  const leader = table.stat(record.pid);
  if (leader && leader.startTime !== record.startTime) return [];
  return groupSince(table, record.pid, record.startTime);
}

/**
 * Stops the services a dead supervisor left running: each recorded process
 * still alive (same pid, start time and boot: a reused pid is never hit) gets
 * SIGCONT (it may be stopped), its stop signal, and after `graceMs` SIGKILL
 * with what is left of its process group (it was started as the leader of
 * its own): only members no older than it, each by pid, never a group that
 * a reused pid now leads. Those in `skip` are left alone. Returns the names
 * of the services it stopped.
 */
export async function stopLeftovers(
  records: readonly ServiceRecord[],
  options: StopLeftoversOptions,
): Promise<string[]> {
  const { table, clock, logger, graceMs } = options;
  const pollMs = options.pollMs ?? 100;
  const boot = table.bootId();
  const stopped: string[] = [];
  const signalGroup = (record: ServiceRecord, signal: NodeJS.Signals) => {
    for (const pid of leftOfGroup(table, record)) table.kill(pid, signal);
  };
  await Promise.all(
    records
      .filter((r) => r.bootId === boot && !options.skip?.includes(r.name))
      .map(async (record) => {
        if (!alive(table, record)) {
          // The leader is gone: whatever is left in its group was its own.
          signalGroup(record, 'SIGKILL');
          return;
        }
        logger.warn('stopping a service a previous supervisor left running', {
          event: 'stack.leftover_stopping',
          service: record.name,
          pid: record.pid,
        });
        signalGroup(record, 'SIGCONT');
        table.kill(record.pid, record.stopSignal);
        const deadline = clock.monotonicNow() + graceMs;
        while (alive(table, record) && clock.monotonicNow() < deadline) await sleep(clock, pollMs);
        if (alive(table, record)) {
          logger.warn('a leftover service did not stop in time, killed', {
            event: 'stack.leftover_killed',
            service: record.name,
            pid: record.pid,
          });
        }
        // The group too: a leader that exited may leave children.
        signalGroup(record, 'SIGKILL');
        const killedBy = clock.monotonicNow() + graceMs;
        while (alive(table, record) && clock.monotonicNow() < killedBy) await sleep(clock, pollMs);
        stopped.push(record.name);
      }),
  );
  return stopped;
}
