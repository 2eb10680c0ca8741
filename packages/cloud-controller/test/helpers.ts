import { existsSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { REPO_ROOT } from '@faultline/core';
import {
  batchOf,
  createHealthStatServer,
  type HealthStat,
  type HealthStatBatch,
  thriftGenerated,
  verifyMemberCredential,
} from '@faultline/protocol';
import { expect } from 'vitest';
import { linuxProcessTable } from '../src/index.js';

export const WORKLOAD_MAIN = path.join(REPO_ROOT, 'packages/cloud-controller/dist/workload-main.js');
export const AGENT_MAIN = path.join(REPO_ROOT, 'packages/cartridge-agent/dist/main.js');

/** Members run the built code: fail with the command to run rather than with a spawn timeout. */
export function assertBuilt(): void {
  for (const file of [WORKLOAD_MAIN, AGENT_MAIN]) {
    if (!existsSync(file)) {
      throw new Error(
        `${file} is missing: build first (npx tsc -b packages/cloud-controller packages/cartridge-agent)`,
      );
    }
  }
}

/** Resolves when `predicate` holds, polling every 25 ms; fails naming `what` after `timeoutMs`. */
export async function waitFor(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The live (non-zombie) processes of a process group. */
export const groupOf = (pgid: number): number[] => linuxProcessTable.groupMembers(pgid).sort((a, b) => a - b);

/** Every pgid a test created must be empty at the end: nothing is left behind. */
export function expectGroupsGone(pgids: Iterable<number>): void {
  for (const pgid of pgids) expect(groupOf(pgid), `process group ${pgid}`).toEqual([]);
}

/**
 * A stand-in SP for tests: one real HealthStatService on loopback that
 * validates and acknowledges every batch and keeps them by member.
 */
export async function startTestSp(memberKey: Buffer) {
  const batches: HealthStatBatch[] = [];
  const connectionErrors: Error[] = [];
  const server = createHealthStatServer(
    {
      publish: async (result) => {
        if (!result.ok) throw new thriftGenerated.InvalidBatch({ message: result.error.message });
        // As the real SP: the credential the driver issued at spawn verifies, and names the stats' member.
        const batch = batchOf(result.value);
        const credential = verifyMemberCredential(memberKey, batch.credential);
        if (!credential.ok || batch.stats.some((s) => s.memberId !== credential.value.memberId)) {
          throw new thriftGenerated.InvalidBatch({ message: 'credential_invalid: the credential does not verify' });
        }
        batches.push(batch);
        const { agentId, sequence } = batch;
        return { agentId, sequence, duplicate: false, epoch: 1, replicated: false };
      },
    },
    { onConnectionError: (error) => connectionErrors.push(error) },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const of = (memberId: string) => batches.filter((b) => b.stats.some((s) => s.memberId === memberId));
  return {
    port,
    batches,
    connectionErrors,
    /** Batches that carry stats of `memberId`. */
    batchesOf: of,
    /** Every stat of `memberId`, in arrival order. */
    statsOf: (memberId: string): HealthStat[] => of(memberId).flatMap((b) => b.stats),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
      }),
  };
}

export type TestSp = Awaited<ReturnType<typeof startTestSp>>;
