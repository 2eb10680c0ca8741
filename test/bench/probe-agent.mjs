// The failover benchmarks' agent: one batch at a time, for `members` members in
// turn (each batch signed with its member's credential, under its member's
// agent id); on any failure it tries the other port after 10 ms and sends the
// same batch again, so every batch it sends is acknowledged in the end. Each
// acknowledgement is recorded with when it came, from which port and the stat
// it acknowledged, so a benchmark can time a failover and look every
// acknowledged stat up in the new active's state.
import { connectHealthStat, fromAckWire, toBatchWire } from '@faultline/protocol';
import { signedBatch } from '@faultline/protocol/testing';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Starts streaming to `ports` (the first tried first). `prefix`: the members are `${prefix}-0` …;
 * `clusterId`: theirs. Set `state.stop` and await `state.done` to end it.
 */
export function probeAgent(ports, memberKey, { members = 50, prefix = 'm', clusterId = 'c' } = {}) {
  const state = { sent: 0, acks: [], stop: false };
  let index = 0;
  let connection;
  state.done = (async () => {
    let n = 0;
    while (!state.stop) {
      const memberId = `${prefix}-${n % members}`;
      const sequence = Math.floor(n / members) + 1;
      n += 1;
      const timestamp = Date.now();
      const batch = signedBatch(memberKey, {
        agentId: memberId,
        sequence,
        stats: [
          {
            clusterId,
            clusterInstanceId: `${clusterId}-1`,
            networkPartitionId: 'np',
            partitionId: 'p',
            memberId,
            healthDescription: 'load_average',
            value: 1,
            timestamp,
          },
        ],
      });
      for (;;) {
        try {
          if (!connection) {
            connection = connectHealthStat('127.0.0.1', ports[index % 2], { connectTimeoutMs: 500 });
            await connection.ready;
          }
          const ack = fromAckWire(await connection.client.publish(toBatchWire(batch)));
          state.acks.push({ at: performance.now(), port: ports[index % 2], ack, memberId, timestamp });
          break;
        } catch {
          connection?.close();
          connection = undefined;
          if (state.stop) return; // told to stop while no node answers: the batch was never acknowledged
          index += 1;
          await sleep(10);
        }
      }
      state.sent += 1;
      await sleep(5);
    }
    connection?.close();
  })();
  return state;
}
