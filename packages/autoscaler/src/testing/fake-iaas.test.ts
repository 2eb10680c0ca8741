import type { MemberInstance } from '@faultline/cloud-controller';
import { testMember } from '@faultline/protocol/testing';
import { describe, expect, it } from 'vitest';
import { FakeIaas } from './fake-iaas.js';

const spec = (memberId: string) => ({ ...testMember(memberId), cartridgeType: 'php' });
const foreign = (memberId: string): MemberInstance => ({
  ...spec(memberId),
  driver: 'fake',
  spawnedAt: 0,
  address: { host: '127.0.0.1', port: 30_000 },
  handle: { fake: 30_000 },
});

describe('FakeIaas discover() and probe()', () => {
  it('discover finds the running members it knows plus the planted ones, which then become known', async () => {
    const iaas = new FakeIaas();
    await iaas.spawn(spec('known'));
    await iaas.spawn(spec('dead'));
    iaas.kill('dead');
    iaas.plant(foreign('orphan'));
    expect(await iaas.isRunning('orphan')).toBe(false);
    expect((await iaas.discover()).map((m) => m.memberId).sort()).toEqual(['known', 'orphan']);
    expect(await iaas.isRunning('orphan')).toBe(true);
    expect((await iaas.terminate('orphan')).outcome).toBe('terminated');
    expect((await iaas.discover()).map((m) => m.memberId)).toEqual(['known']);
    expect(iaas.callsOf('discover')).toHaveLength(2);
  });

  it('probe: gone when unknown or dead, failing when hung, else answering', async () => {
    const iaas = new FakeIaas();
    await iaas.spawn(spec('ok'));
    await iaas.spawn(spec('hung'));
    await iaas.spawn(spec('dead'));
    iaas.hung.add('hung');
    iaas.kill('dead');
    iaas.plant(foreign('not-yet-found'));
    expect(await Promise.all(['ok', 'hung', 'dead', 'nobody', 'not-yet-found'].map((id) => iaas.probe(id)))).toEqual([
      'answering',
      'failing',
      'gone',
      'gone',
      'gone',
    ]);
    expect(iaas.callsOf('probe', 'hung')).toHaveLength(1);
  });

  it('restartAgent: a new agent number in the handle, or running, failed, gone as told', async () => {
    const iaas = new FakeIaas();
    await iaas.spawn(spec('ok'));
    await iaas.spawn(spec('busy'));
    await iaas.spawn(spec('broken'));
    iaas.agentRunning.add('busy');
    iaas.failAgentRestarts.add('broken');
    const restarted = await iaas.restartAgent('ok');
    expect(restarted).toMatchObject({ outcome: 'restarted', instance: { memberId: 'ok', handle: { agent: 1 } } });
    expect(await iaas.restartAgent('ok')).toMatchObject({ instance: { handle: { agent: 2 } } });
    expect((await iaas.list()).find((m) => m.memberId === 'ok')?.handle).toMatchObject({ agent: 2 });
    expect((await iaas.restartAgent('busy')).outcome).toBe('running');
    expect((await iaas.restartAgent('broken')).outcome).toBe('failed');
    expect((await iaas.restartAgent('nobody')).outcome).toBe('gone');
    expect(iaas.callsOf('restartAgent')).toHaveLength(5);
  });
});
