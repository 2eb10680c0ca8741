import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { createMemoryLogger } from '@faultline/core/testing';
import { describe, expect, it, vi } from 'vitest';
import { forwardOutput, OutputFile } from './service-output.js';

const target = (lines: string[], tail?: string[]) => ({
  name: 'postgres',
  outputFile: undefined,
  file: undefined,
  console: true,
  write: (line: string) => lines.push(line),
  ...(tail ? { tail } : {}),
});

describe('forwardOutput', () => {
  it('keeps a UTF-8 character whole when a read splits it', () => {
    const stream = new PassThrough();
    const lines: string[] = [];
    forwardOutput(stream, target(lines));
    const bytes = Buffer.from('Größe: 3 €\n');
    const cut = bytes.indexOf(Buffer.from('€')) + 1; // inside the euro sign's three bytes
    stream.write(bytes.subarray(0, cut));
    stream.write(bytes.subarray(cut));
    expect(lines).toEqual(['Größe: 3 €']);
  });

  it('passes on an unfinished last line when the stream ends, into the tail too', async () => {
    const stream = new PassThrough();
    const lines: string[] = [];
    const tail: string[] = [];
    forwardOutput(stream, target(lines, tail));
    stream.end('first\nno newline at the end');
    await new Promise((resolve) => stream.once('end', resolve));
    expect(lines).toEqual(['first', 'no newline at the end']);
    expect(tail).toEqual(['first', 'no newline at the end']);
  });

  it('passes a line that never ends on in bounded pieces', () => {
    const stream = new PassThrough();
    const lines: string[] = [];
    forwardOutput(stream, target(lines));
    for (let i = 0; i < 100; i++) stream.write('x'.repeat(10_000));
    expect(lines.length).toBeGreaterThanOrEqual(15);
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(64 * 1024);
    expect(lines.join('').length).toBeGreaterThan(900_000);
  });
});

describe('OutputFile', () => {
  it('logs a file it cannot open once, and never throws', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-output-'));
    const file = path.join(dir, 'postgres.log');
    mkdirSync(file); // a folder where the file should be: EISDIR
    const log = createMemoryLogger();
    const output = new OutputFile(file, log, 'postgres');
    output.write(Buffer.from('a line\n'));
    await vi.waitFor(() => expect(log.events()).toEqual(['supervisor.output_failed']));
    output.write(Buffer.from('another\n'));
    output.end();
    output.end();
    expect(log.events()).toEqual(['supervisor.output_failed']);
  });

  it('writes nothing after end(): a backend that outlived its postmaster may still write to the pipe', async () => {
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'faultline-output-')), 'logs', 'postgres.log');
    const log = createMemoryLogger();
    const output = new OutputFile(file, log, 'postgres');
    output.write(Buffer.from('before\n'));
    output.end();
    output.write(Buffer.from('after\n'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(readFileSync(file, 'utf8')).toBe('before\n');
    expect(log.events()).toEqual([]);
  });
});
