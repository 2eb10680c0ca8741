import { describe, expect, it } from 'vitest';
import { formatStatus, type StackStatus } from './status.js';

const status: StackStatus = {
  services: [
    { name: 'postgres', pid: 2071, state: 'up', restarts: 0 },
    { name: 'sp-1', pid: 2484, state: 'up', restarts: 1 },
    { name: 'autoscaler-a', pid: null, state: 'restarting', restarts: 3 },
  ],
  sp: [],
  brokers: [],
  clusters: [],
  actions: [],
};

describe('formatStatus', () => {
  it('shows the supervisor’s view of each service: state, pid, restarts', () => {
    const lines = formatStatus(status).split('\n');
    expect(lines.slice(0, 4)).toEqual([
      'SERVICES',
      '  postgres       up          pid 2071     0 restarts',
      '  sp-1           up          pid 2484     1 restart',
      '  autoscaler-a   restarting  pid -        3 restarts',
    ]);
  });
});
