import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import path from 'node:path';
import type { ServiceRole } from '@faultline/protocol';
import { brokerEndpoints, TEST_CREDENTIALS, type TestBroker } from '@faultline/test-support';
import type { BrokerEndpoint, Credentials } from '../src/index.js';

export const endpoints = (brokers: readonly TestBroker[]): BrokerEndpoint[] => brokerEndpoints(brokers);

export const credentials = (role: ServiceRole): Credentials => TEST_CREDENTIALS[role];

/** Resolves when `predicate` holds, polling every 20 ms; rejects with `what` after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface PublisherProcess {
  child: ChildProcessWithoutNullStreams;
  lines: string[];
  send(command: string): void;
  waitForLine(line: string, timeoutMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

/** The fixture publisher as a real child process (it runs the built package). */
export function spawnPublisher(options: Record<string, unknown>): PublisherProcess {
  const child = spawn(process.execPath, [
    path.join(import.meta.dirname, 'fixtures/numbered-publisher.mjs'),
    JSON.stringify(options),
  ]);
  const lines: string[] = [];
  let buffer = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    const parts = buffer.split('\n');
    buffer = parts.pop() ?? '';
    lines.push(...parts);
  });
  child.stderr.on('data', (chunk: Buffer) => lines.push(`stderr: ${chunk.toString()}`));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    lines,
    send: (command) => child.stdin.write(`${command}\n`),
    waitForLine: (line, timeoutMs) =>
      waitFor(
        () => lines.includes(line),
        `"${line}" from the publisher (saw: ${lines.slice(-5).join(' | ')})`,
        timeoutMs,
      ),
    exited,
  };
}
