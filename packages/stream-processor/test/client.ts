import {
  type BatchAck,
  connectHealthStat,
  fromAckWire,
  type HealthStatBatch,
  type HealthStatConnection,
  toBatchWire,
} from '@faultline/protocol';
import { signedBatch } from '@faultline/protocol/testing';
import {
  type SpPairOptions,
  startPostgres,
  startSpPair,
  type TestPostgres,
  type TestSpNode,
  testSecret,
  waitFor,
} from '@faultline/test-support';
import { afterAll, afterEach, beforeAll } from 'vitest';

/** A load_average stat of `memberId`, stamped now (the SP refuses stats far from its clock). */
export const stat = (memberId: string, value: number) => ({
  clusterId: 'c',
  clusterInstanceId: 'c-1',
  networkPartitionId: 'np-1',
  partitionId: 'p-1',
  memberId,
  healthDescription: 'load_average' as const,
  value,
  timestamp: Date.now(),
});

/** The member key of a pair started by startSpPair: what the cloud controller would issue credentials under. */
export const memberKeyOf = (node: TestSpNode): Buffer => testSecret(node.security.memberKeyFile);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * What an agent does, reduced to the essentials the pair's tests need: send
 * one batch at a time, signed with the credential of the member its stats are
 * for, and on refusal, error or timeout move to the next endpoint and resend
 * the same batch until some node acknowledges it.
 */
export class FailoverClient {
  acks: { ack: BatchAck; port: number; at: number }[] = [];
  /** The last failures, oldest first: which port, what it said (printed when a test times out). */
  readonly trail: string[] = [];
  /** The call under way: when it began, to which port, which batch, and whether it is connecting or calling. */
  phase = '';
  private index = 0;
  private connection: HealthStatConnection | undefined;

  constructor(
    private readonly memberKey: Buffer,
    private readonly ports: number[],
    private readonly callTimeoutMs = 2_000,
  ) {}

  async send(unsigned: HealthStatBatch, deadlineMs = 30_000): Promise<BatchAck> {
    const batch = signedBatch(this.memberKey, unsigned);
    const deadline = Date.now() + deadlineMs;
    let failures = 0;
    for (;;) {
      const port = this.ports[this.index % this.ports.length] as number;
      try {
        const ack = await this.call(port, batch);
        this.acks.push({ ack, port, at: performance.now() });
        return ack;
      } catch (error) {
        this.trail.push(`${new Date().toISOString()} ${port} ${batch.agentId}#${batch.sequence}: ${String(error)}`);
        if (this.trail.length > 100) this.trail.splice(0, 50);
        this.connection?.close();
        this.connection = undefined;
        this.index += 1;
        failures += 1;
        if (Date.now() > deadline) throw new Error(`batch ${batch.sequence} not acknowledged within ${deadlineMs} ms`);
        if (failures % this.ports.length === 0) await sleep(50);
      }
    }
  }

  close(): void {
    this.connection?.close();
  }

  private async call(port: number, batch: HealthStatBatch): Promise<BatchAck> {
    this.phase = `${new Date().toISOString()} ${port} ${batch.agentId}#${batch.sequence}`;
    if (!this.connection) {
      this.phase += ' connecting';
      const connection = connectHealthStat('127.0.0.1', port, { connectTimeoutMs: 1_000 });
      this.connection = connection;
      await connection.ready;
    }
    this.phase += ' calling';
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timeout')), this.callTimeoutMs);
    });
    try {
      return fromAckWire(await Promise.race([this.connection.client.publish(toBatchWire(batch)), timeout]));
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The active and the passive once the passive follows the active's current epoch. */
export async function steady(nodes: TestSpNode[]) {
  return waitFor(async () => {
    const s = await Promise.all(nodes.map((n) => n.status()));
    const i = s.findIndex((x) => x?.role === 'ACTIVE');
    const active = s[i];
    const passive = s[1 - i];
    if (i < 0 || !active || passive?.following?.epoch !== active.epoch || active.passive.link !== 'ready')
      return undefined;
    return { active: nodes[i] as TestSpNode, passive: nodes[1 - i] as TestSpNode, epoch: active.epoch as number };
  }, 'one active with a linked passive');
}

/**
 * The hooks of a suite of pair tests: one PostgreSQL for the suite, and the
 * pair a test started stopped after it (whether it passed or not).
 */
export function pairSuite(): {
  db(): TestPostgres;
  start(options?: Omit<SpPairOptions, 'databaseUrl'>): Promise<[TestSpNode, TestSpNode]>;
} {
  let db: TestPostgres | undefined;
  let pair: [TestSpNode, TestSpNode] | undefined;
  beforeAll(async () => {
    db = await startPostgres();
  });
  afterEach(async () => {
    if (pair) await Promise.all(pair.map((n) => n.stop()));
    pair = undefined;
  });
  afterAll(async () => {
    await db?.stop();
  });
  const database = (): TestPostgres => {
    if (!db) throw new Error('the suite has no database yet (pairSuite() must be called inside describe)');
    return db;
  };
  return {
    db: database,
    start: async (options = {}) => {
      pair = await startSpPair({ ...options, databaseUrl: database().connectionString });
      return pair;
    },
  };
}

export { waitFor };
