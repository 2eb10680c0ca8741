import { readdirSync } from 'node:fs';
import { linuxProcessTable, type ProcessTable } from '@faultline/cloud-controller';

/**
 * The process table the supervisor acts on: the local driver's (start times,
 * groups, signals) and the children of a process, which PostgreSQL needs:
 * every child of a postmaster calls setsid(), so a signal to the postmaster's
 * group never reaches its backends.
 */
export interface ServiceProcessTable extends ProcessTable {
  /** Pids of the live processes whose parent is `ppid` (field 4 of /proc/<pid>/stat). */
  childrenOf(ppid: number): number[];
}

/** The real table: Linux procfs and process.kill. */
export const linuxServiceTable: ServiceProcessTable = {
  ...linuxProcessTable,
  childrenOf: (ppid) => {
    const children: number[] = [];
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const stat = linuxProcessTable.stat(Number(name));
      if (stat && stat.ppid === ppid && stat.state !== 'Z' && stat.state !== 'X') children.push(stat.pid);
    }
    return children;
  },
};

/**
 * SIGKILL to a process and everything it started, its children in sessions
 * of their own included: it is stopped first (SIGSTOP: it forks nothing more
 * meanwhile), then each child and its group are killed, then it and its
 * group. A PostgreSQL backend that outlived its postmaster would keep the
 * shared memory attached, and the next postmaster would refuse to start
 * ("pre-existing shared memory block is still in use").
 */
export function killTree(table: ServiceProcessTable, pid: number): void {
  table.kill(pid, 'SIGSTOP');
  for (const child of table.childrenOf(pid)) {
    table.kill(-child, 'SIGKILL');
    table.kill(child, 'SIGKILL');
  }
  if (!table.kill(-pid, 'SIGKILL')) table.kill(pid, 'SIGKILL');
}

/**
 * The live members of group `pgid` that started no earlier than `startTime`
 * (a process of the group's first leader, not of a later owner of the
 * number): each to be signalled by its own pid, never the group by its id,
 * which a new process may lead once the old group is empty.
 */
export function groupSince(table: ProcessTable, pgid: number, startTime: number): number[] {
  return table.groupMembers(pgid).filter((pid) => {
    const stat = table.stat(pid);
    return stat !== undefined && stat.pgid === pgid && stat.startTime >= startTime;
  });
}
