import { describe, expect, it } from 'vitest';
import { summarize } from './window-math.js';
import { type SampleSource, WindowStats, type WindowSummary } from './window-stats.js';

const src = (memberId: string, clusterId = 'php'): SampleSource => ({
  clusterId,
  clusterInstanceId: `${clusterId}-1`,
  networkPartitionId: 'np-1',
  memberId,
});

const figure = (out: WindowSummary[], kind: string, metric: string, memberId?: string) =>
  out.find((o) => o.kind === kind && o.metric === metric && o.memberId === memberId)?.value;

/**
 * Member a, load: 0 s → 100 (outside the window), 15 s → 1, 30 s → 2, 45 s → 4, 60 s → 8.
 * Member b, load: 20 s → 10, 50 s → 40, 61 s → 999 (after the tick: waits for the next).
 */
function loaded(): WindowStats {
  const w = new WindowStats({ windowMs: 60_000, maxSamplesPerSeries: 1_000 });
  for (const [t, v] of [
    [0, 100],
    [15, 1],
    [30, 2],
    [45, 4],
    [60, 8],
  ] as const) {
    w.add(src('a'), 'LoadAverage', t * 1000, v);
  }
  for (const [t, v] of [
    [20, 10],
    [61, 999],
    [50, 40], // out of order: inserted in time order
  ] as const) {
    w.add(src('b'), 'LoadAverage', t * 1000, v);
  }
  return w;
}

describe('WindowStats', () => {
  it('cluster figures: mean of every sample; mean of the members’ gradients and second derivatives', () => {
    const out = loaded().summarize(60_000);
    // (1 + 2 + 4 + 8 + 10 + 40) / 6
    expect(figure(out, 'Average', 'LoadAverage')).toBeCloseTo(65 / 6, 12);
    // a: (8 − 1)/45 = 7/45; b: (40 − 10)/30 = 1 → (7/45 + 1)/2 = 26/45
    expect(figure(out, 'GradientOf', 'LoadAverage')).toBeCloseTo(26 / 45, 12);
    // a: g₁ = 1/15, g₂ = 4/15, m₂ − m₁ = 30 s → 1/150; b has two samples: none
    expect(figure(out, 'SecondDerivativeOf', 'LoadAverage')).toBeCloseTo(1 / 150, 12);
    expect(out.filter((o) => o.memberId === undefined)).toHaveLength(3);
    expect(out[0]).toEqual({
      kind: 'Average',
      metric: 'LoadAverage',
      clusterId: 'php',
      clusterInstanceId: 'php-1',
      networkPartitionId: 'np-1',
      value: expect.any(Number),
      windowFrom: 0,
      windowTo: 60_000,
    });
  });

  it('member figures for load and memory; fewer than 3 samples: no second derivative', () => {
    const out = loaded().summarize(60_000);
    expect(figure(out, 'Average', 'LoadAverage', 'a')).toBe(3.75);
    expect(figure(out, 'GradientOf', 'LoadAverage', 'a')).toBeCloseTo(7 / 45, 12);
    expect(figure(out, 'SecondDerivativeOf', 'LoadAverage', 'a')).toBeCloseTo(1 / 150, 12);
    expect(figure(out, 'Average', 'LoadAverage', 'b')).toBe(25);
    expect(figure(out, 'GradientOf', 'LoadAverage', 'b')).toBe(1);
    expect(figure(out, 'SecondDerivativeOf', 'LoadAverage', 'b')).toBeUndefined();
    expect(out).toHaveLength(3 + 3 + 2);
  });

  it('requests in flight is summarized per cluster only', () => {
    const w = new WindowStats({ windowMs: 60_000, maxSamplesPerSeries: 1_000 });
    w.add(src('a'), 'RequestsInFlight', 10_000, 4);
    w.add(src('a'), 'RequestsInFlight', 20_000, 6);
    const out = w.summarize(30_000);
    expect(out.map((o) => [o.kind, o.memberId])).toEqual([
      ['Average', undefined],
      ['GradientOf', undefined],
    ]);
    expect(figure(out, 'GradientOf', 'RequestsInFlight')).toBe(0.2);
  });

  it('the window slides: old samples go, samples after the tick wait for the next', () => {
    const w = loaded();
    w.summarize(60_000);
    const out = w.summarize(75_000);
    // a: 30 s → 2, 45 s → 4, 60 s → 8; b: 20 s → 10, 50 s → 40, 61 s → 999
    expect(figure(out, 'Average', 'LoadAverage', 'b')).toBeCloseTo(1049 / 3, 12);
    expect(figure(out, 'Average', 'LoadAverage', 'a')).toBeCloseTo(14 / 3, 12);
    expect(out[0]?.windowFrom).toBe(15_000);
  });

  it('members and clusters without samples in the window are dropped', () => {
    const w = loaded();
    expect(w.size).toBe(2);
    expect(w.summarize(200_000)).toEqual([]);
    expect(w.size).toBe(0);
    expect(w.clusters).toBe(0);
  });

  it('a forgotten member leaves its cluster’s figures', () => {
    const w = loaded();
    expect(w.forgetMember('b')).toBe(true);
    const out = w.summarize(60_000);
    expect(figure(out, 'Average', 'LoadAverage')).toBe(3.75);
    expect(out.some((o) => o.memberId === 'b')).toBe(false);
  });

  it('clusters are summarized apart, each with its own members', () => {
    const w = new WindowStats({ windowMs: 60_000, maxSamplesPerSeries: 1_000 });
    w.add(src('a', 'php'), 'MemoryConsumption', 10_000, 10);
    w.add(src('x', 'tomcat'), 'MemoryConsumption', 10_000, 90);
    const out = w.summarize(15_000);
    expect(out.filter((o) => o.kind === 'Average').map((o) => [o.clusterId, o.memberId, o.value])).toEqual([
      ['php', undefined, 10],
      ['php', 'a', 10],
      ['tomcat', undefined, 90],
      ['tomcat', 'x', 90],
    ]);
  });

  it('keeps at most maxSamplesPerSeries samples, the newest', () => {
    const w = new WindowStats({ windowMs: 60_000, maxSamplesPerSeries: 3 });
    for (let i = 1; i <= 5; i++) w.add(src('a'), 'LoadAverage', i * 1000, i);
    expect(figure(w.summarize(10_000), 'Average', 'LoadAverage', 'a')).toBe(4);
  });

  it('export and import give the same figures', () => {
    const w = loaded();
    const copy = new WindowStats({ windowMs: 60_000, maxSamplesPerSeries: 1_000 });
    copy.import(JSON.parse(JSON.stringify(w.export())));
    expect(copy.summarize(60_000)).toEqual(w.summarize(60_000));
  });

  it('a cluster’s next tick reuses its columns: only this tick’s members in them, the earlier tick’s let go', () => {
    const w = new WindowStats({ windowMs: 60_000, maxSamplesPerSeries: 100 });
    for (const m of ['a', 'b', 'c']) w.add(src(m), 'LoadAverage', 1_000, 5);
    const first = w.summaryJob(15_000).run(() => true)[0];
    const columns = first?.members[0];
    expect(columns?.size).toBe(3);
    expect(columns?.ids.slice(0, 3)).toEqual(['a', 'b', 'c']);

    w.forgetMember('b');
    const second = w.summaryJob(30_000).run(() => true)[0];
    const again = second?.members[0];
    // The same arrays, this tick's two members at their front, nothing of b's past them.
    expect(again?.ids).toBe(columns?.ids);
    expect(again?.values).toBe(columns?.values);
    expect(again?.size).toBe(2);
    expect(again?.ids.slice(0, 2)).toEqual(['a', 'c']);
    expect(again?.ids.slice(2).every((id) => id === '')).toBe(true);
    expect(again?.instances.slice(2).every((id) => id === '')).toBe(true);
    expect(second?.memberCount).toBe(2);
    expect(second?.memberIds.slice(2).every((id) => id === '')).toBe(true);
    // The synchronous summary reads only the tick's entries.
    expect(
      w
        .summarize(45_000)
        .filter((o) => o.memberId !== undefined && o.kind === 'Average')
        .map((o) => o.memberId),
    ).toEqual(['a', 'c']);
  });

  it('a cluster grown past its columns gets larger ones', () => {
    const w = new WindowStats({ windowMs: 60_000, maxSamplesPerSeries: 100 });
    w.add(src('a'), 'LoadAverage', 1_000, 5);
    const before = w.summaryJob(15_000).run(() => true)[0]?.members[0];
    for (let i = 0; i < 10; i++) w.add(src(`m-${i}`), 'LoadAverage', 16_000, i);
    const after = w.summaryJob(30_000).run(() => true)[0]?.members[0];
    expect(after?.ids).not.toBe(before?.ids);
    expect(after?.size).toBe(11);
    expect(after?.ids.slice(0, 11)).toEqual(['a', ...Array.from({ length: 10 }, (_, i) => `m-${i}`)]);
    expect(after?.values.slice(1, 11)).toEqual(Array.from({ length: 10 }, (_, i) => i));
  });

  it('holds what a plain sorted list per series holds, through growth, late samples, the bound and pruning', () => {
    // A seeded walk: members flooding past the first capacity, late samples, ticks that prune; after
    // every tick each series and each member figure is compared with a sorted list kept beside it.
    let seed = 7;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const max = 12;
    const windowMs = 10_000;
    const w = new WindowStats({ windowMs, maxSamplesPerSeries: max });
    const metrics = ['LoadAverage', 'MemoryConsumption', 'RequestsInFlight'] as const;
    const reference = new Map<string, [number, number][]>();
    const members = ['a', 'b', 'c', 'd'];
    let now = 0;
    let hitBound = false;
    for (let tick = 1; tick <= 60; tick++) {
      const windowTo = tick * 2_000;
      now = Math.max(now, windowTo - 2_000);
      for (let n = Math.floor(random() * 40); n > 0; n--) {
        const member = members[Math.floor(random() * members.length)] as string;
        const metric = metrics[Math.floor(random() * (member === 'd' ? 1 : 3))] as (typeof metrics)[number];
        now += Math.floor(random() * 100);
        const t = random() < 0.2 ? now - Math.floor(random() * 3_000) : now; // some arrive late
        const v = Math.round(random() * 1_000) / 10;
        w.add(src(member), metric, t, v);
        const list = reference.get(`${member}/${metric}`) ?? [];
        let i = list.length;
        while (i > 0 && (list[i - 1] as [number, number])[0] > t) i--;
        list.splice(i, 0, [t, v]);
        if (list.length > max) list.shift();
        if (list.length === max) hitBound = true;
        reference.set(`${member}/${metric}`, list);
      }
      const out = w.summaryJob(windowTo).run(() => true);
      for (const [key, list] of reference) {
        while (list.length > 0 && (list[0] as [number, number])[0] <= windowTo - windowMs) list.shift();
        if (list.length === 0) reference.delete(key);
      }
      for (const member of members) {
        const held = w.exportOne(member)?.samples ?? {};
        for (const metric of metrics)
          expect(held[metric] ?? [], `${member} ${metric} at tick ${tick}`).toEqual(
            reference.get(`${member}/${metric}`) ?? [],
          );
        const list = reference.get(`${member}/LoadAverage`)?.filter(([t]) => t <= windowTo) ?? [];
        const expected = summarize(
          list.map(([t]) => t),
          list.map(([, v]) => v),
        );
        const columns = out[0]?.members.find((c) => c.first.metric === 'LoadAverage' && c.first.kind === 'GradientOf');
        const at = columns ? columns.ids.slice(0, columns.size).indexOf(member) : -1;
        // Bit for bit the figure of the same samples in two plain arrays.
        expect(at >= 0 ? columns?.values[at] : undefined, `${member} gradient at tick ${tick}`).toBe(expected.gradient);
      }
    }
    expect(w.size).toBe(4);
    expect(hitBound).toBe(true);
    expect(reference.get('a/LoadAverage')?.length).toBeGreaterThan(8); // past the first capacity
  });
});
