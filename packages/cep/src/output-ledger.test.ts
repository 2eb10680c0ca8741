import { createEnvelope } from '@faultline/protocol';
import { describe, expect, it } from 'vitest';
import { type Output, OutputLedger, outputId, parseOutputId } from './output-ledger.js';

const fault = (memberId: string, seq: number): Output => {
  const stream = `MemberFaultEvent:${memberId}`;
  return {
    kind: 'fault',
    stream,
    seq,
    envelope: createEnvelope(
      'MemberFaultEvent',
      {
        clusterId: 'php',
        clusterInstanceId: 'php-1',
        networkPartitionId: 'np-1',
        partitionId: 'p-1',
        memberId,
        reason: 'timeout',
        lastStatAt: seq,
        silentForMs: 60_000,
      },
      { source: 'sp-2', id: outputId(stream, seq), time: 0 },
    ),
  };
};

const summary = (clusterId: string, windowTo: number): Output => {
  const stream = `AverageLoadAverageEvent:${clusterId}:np-1`;
  return {
    kind: 'summary',
    stream,
    seq: windowTo,
    envelope: createEnvelope(
      'AverageLoadAverageEvent',
      { clusterId, clusterInstanceId: 'c-1', networkPartitionId: 'np-1', value: 1, windowFrom: 0, windowTo },
      { source: 'sp-2', id: outputId(stream, windowTo), time: 0 },
    ),
  };
};

const ids = (outputs: Output[]) => outputs.map((o) => o.envelope.id);

describe('OutputLedger', () => {
  it('parses ids at the last colon, so member and cluster ids may hold colons', () => {
    expect(parseOutputId('MemberFaultEvent:a:b:1700')).toEqual({
      kind: 'fault',
      stream: 'MemberFaultEvent:a:b',
      seq: 1700,
    });
    expect(parseOutputId('AverageLoadAverageEvent:php:np-1:15000')).toEqual({
      kind: 'summary',
      stream: 'AverageLoadAverageEvent:php:np-1',
      seq: 15_000,
    });
    expect(parseOutputId('no-seq')).toBeUndefined();
    expect(parseOutputId('x:12.5')).toBeUndefined();
  });

  it('holds outputs until confirmed; takeAll gives faults first, in order', () => {
    const ledger = new OutputLedger(100);
    ledger.hold(summary('php', 15_000));
    ledger.hold(fault('m-1', 100));
    ledger.hold(fault('m-2', 200));
    expect(ledger.confirm(['MemberFaultEvent:m-1:100'])).toBe(1);
    expect(ids(ledger.takeAll())).toEqual(['MemberFaultEvent:m-2:200', 'AverageLoadAverageEvent:php:np-1:15000']);
    expect(ledger.size).toBe(0);
  });

  it('keeps only the newest summary of a stream; a newer confirmation clears an older one', () => {
    const ledger = new OutputLedger(100);
    ledger.hold(summary('php', 15_000));
    ledger.hold(summary('php', 30_000));
    expect(ledger.superseded).toBe(1);
    expect(ids(ledger.export().pending)).toEqual(['AverageLoadAverageEvent:php:np-1:30000']);
    expect(ledger.confirm(['AverageLoadAverageEvent:php:np-1:45000'])).toBe(1);
    expect(ledger.size).toBe(0);
  });

  it('remembers confirmations that overtake the output: per member for faults, per tick for summaries', () => {
    const ledger = new OutputLedger(100);
    ledger.confirm(['MemberFaultEvent:m-1:100', 'AverageLoadAverageEvent:php:np-1:30000']);
    expect(ledger.faultPublished(fault('m-1', 100))).toBe(true);
    expect(ledger.faultPublished(fault('m-1', 115))).toBe(false);
    expect(ledger.faultPublished(fault('m-2', 100))).toBe(false);
    expect(ledger.tickPublished(30_000)).toBe(true);
    expect(ledger.tickPublished(15_000)).toBe(true);
    expect(ledger.tickPublished(45_000)).toBe(false);
    ledger.forgetStream('MemberFaultEvent:m-1');
    expect(ledger.faultPublished(fault('m-1', 100))).toBe(false);
  });

  it('at takeover, a pending summary older than the newest tick published is stale', () => {
    const ledger = new OutputLedger(100);
    ledger.hold(summary('php', 15_000));
    ledger.hold(summary('tomcat', 30_000));
    ledger.hold(summary('jboss', 30_000));
    // The active got to tick 30 000 (jboss confirmed, tomcat's confirmation lost with it).
    ledger.confirm(['AverageLoadAverageEvent:jboss:np-1:30000']);
    expect(ids(ledger.takeAll())).toEqual(['AverageLoadAverageEvent:tomcat:np-1:30000']);
    expect(ledger.superseded).toBe(1);
  });

  it('is bounded: the oldest summary goes first, then the oldest fault', () => {
    const ledger = new OutputLedger(3);
    ledger.hold(fault('m-1', 1));
    ledger.hold(summary('a', 15_000));
    ledger.hold(fault('m-2', 2));
    // The summary goes first, and it is no fault.
    expect(ledger.hold(fault('m-3', 3))).toBe(0);
    expect(ids(ledger.export().pending)).toEqual([
      'MemberFaultEvent:m-1:1',
      'MemberFaultEvent:m-2:2',
      'MemberFaultEvent:m-3:3',
    ]);
    expect(ledger.hold(fault('m-4', 4))).toBe(1);
    expect(ids(ledger.takeAll())).toEqual([
      'MemberFaultEvent:m-2:2',
      'MemberFaultEvent:m-3:3',
      'MemberFaultEvent:m-4:4',
    ]);
    expect(ledger.dropped).toBe(2);
    expect(ledger.faultsDropped).toBe(1);
  });

  it('exports and imports pending outputs and watermarks as plain JSON', () => {
    const ledger = new OutputLedger(100);
    ledger.hold(fault('m-1', 1));
    ledger.markPublished(summary('php', 15_000));
    ledger.markPublished(fault('m-9', 7));
    const copy = new OutputLedger(100);
    copy.import(JSON.parse(JSON.stringify(ledger.export())));
    expect(copy.export()).toEqual(ledger.export());
    expect(copy.export()).toMatchObject({
      published: [['MemberFaultEvent:m-9', 7]],
      summariesPublishedThrough: 15_000,
    });
  });
});
