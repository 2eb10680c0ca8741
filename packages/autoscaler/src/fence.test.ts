import { describe, expect, it } from 'vitest';
import { FencedError, fencedIaas } from './fence.js';
import { FakeIaas } from './testing/index.js';

const spec = {
  memberId: 'php-aaaaaa',
  clusterId: 'php',
  clusterInstanceId: 'php-1',
  networkPartitionId: 'np-1',
  partitionId: 'p-1',
  cartridgeType: 'php',
};

describe('fencedIaas', () => {
  it('acts only while the fence is valid at the moment of the call; reads always go through', async () => {
    const iaas = new FakeIaas();
    let valid = true;
    const refused: string[] = [];
    const fenced = fencedIaas(iaas, { isValid: () => valid, epoch: 1 }, (what) => refused.push(what));
    expect(fenced.name).toBe('fake');
    await fenced.spawn(spec);
    expect(iaas.running).toEqual(['php-aaaaaa']);

    valid = false; // deposed, or woke from a pause past the lease
    await expect(fenced.terminate('php-aaaaaa')).rejects.toBeInstanceOf(FencedError);
    await expect(fenced.spawn({ ...spec, memberId: 'php-bbbbbb' })).rejects.toMatchObject({ code: 'FL_ERR_FENCED' });
    await expect(fenced.adopt([])).rejects.toBeInstanceOf(FencedError);
    expect(refused).toEqual(['terminate', 'spawn', 'adopt']);
    expect(iaas.running).toEqual(['php-aaaaaa']);
    expect(iaas.callsOf('terminate')).toEqual([]);
    expect(await fenced.isRunning('php-aaaaaa')).toBe(true);
    expect(await fenced.probe('php-aaaaaa')).toBe('answering');
    expect((await fenced.discover()).map((i) => i.memberId)).toEqual(['php-aaaaaa']);
    // The node closes the driver, not one term's autoscaler.
    await fenced.close();
  });
});
