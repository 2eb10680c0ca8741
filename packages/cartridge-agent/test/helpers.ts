import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import { REPO_ROOT } from '@faultline/core';
import {
  createHealthStatServer,
  type HealthStat,
  statsOf,
  thriftGenerated,
  verifyMemberCredential,
} from '@faultline/protocol';
import { TEST_MEMBER_KEY } from '@faultline/protocol/testing';

export const AGENT_MAIN = path.join(REPO_ROOT, 'packages/cartridge-agent/dist/main.js');

export function assertBuilt(): void {
  if (!existsSync(AGENT_MAIN))
    throw new Error(`${AGENT_MAIN} is missing: build first (npx tsc -b packages/cartridge-agent)`);
}

/** Resolves when `predicate` holds, polling every 20 ms; fails naming `what` after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What a test SP node does with a publish: acks, refuses (NotActive), or takes the batch and never answers. */
export type NodeMode = 'active' | 'passive' | 'ack-lost';

export interface Taken {
  node: string;
  agentId: string;
  sequence: number;
  stats: HealthStat[];
}

/**
 * Two stand-in SP nodes on loopback, taking only batches whose credential
 * verifies under TEST_MEMBER_KEY, sharing what they have taken as the real
 * pair will (the passive holds every event the active acknowledged), so a
 * resend after a lost ack is answered `duplicate: true` by either node.
 */
export async function startSpPair() {
  const seen = new Set<string>();
  /** Every batch taken as new, in order, with the node that took it. */
  const taken: Taken[] = [];
  const replies = { acks: 0, duplicates: 0, refused: 0, unanswered: 0 };
  const modes: Record<string, NodeMode> = { 'sp-1': 'active', 'sp-2': 'passive' };
  const node = async (name: string) => {
    const server = createHealthStatServer(
      {
        publish: async (result) => {
          if (!result.ok) throw new thriftGenerated.InvalidBatch({ message: result.error.message });
          // As the real SP: only a batch with its member's credential (issued under TEST_MEMBER_KEY) is taken.
          if (!verifyMemberCredential(TEST_MEMBER_KEY, result.value.credential).ok) {
            throw new thriftGenerated.InvalidBatch({ message: 'credential_invalid: the credential does not verify' });
          }
          const { agentId, sequence } = result.value;
          const mode = modes[name];
          if (mode === 'passive') {
            replies.refused += 1;
            throw new thriftGenerated.NotActive({ message: `${name} is passive`, nodeId: name });
          }
          const key = `${agentId}/${sequence}`;
          const duplicate = seen.has(key);
          if (!duplicate) {
            seen.add(key);
            taken.push({ node: name, agentId, sequence, stats: statsOf(result.value) });
          }
          if (mode === 'ack-lost') {
            replies.unanswered += 1;
            return new Promise<never>(() => {});
          }
          replies.acks += 1;
          if (duplicate) replies.duplicates += 1;
          return { agentId, sequence, duplicate, epoch: 1, replicated: true };
        },
      },
      { onConnectionError: () => {} },
    );
    const sockets = new Set<Socket>();
    server.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, sockets, port: (server.address() as AddressInfo).port };
  };
  const nodes = [await node('sp-1'), await node('sp-2')];
  return {
    ports: nodes.map((n) => n.port),
    modes,
    taken,
    replies,
    close: () => {
      // Connections with a never-answered call would keep close() waiting: drop them.
      for (const { server, sockets } of nodes) {
        server.close();
        for (const socket of sockets) socket.destroy();
      }
    },
  };
}

export interface AgentProcess {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** The built agent as a real process with the member environment `env`. */
export function spawnAgent(env: NodeJS.ProcessEnv): AgentProcess {
  const child = spawn(process.execPath, [AGENT_MAIN], { env: { PATH: process.env.PATH, ...env }, stdio: 'pipe' });
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

/** The JSON records of a service's log file whose event key is `event`. */
export function logRecords(file: string, event: string): Record<string, unknown>[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((record) => record.event === event);
}
