import http from 'node:http';
import type { Clock } from '@faultline/core';
import { CallTimeoutError } from './errors.js';
import type { ProbeResult, WorkloadProbe } from './stats.js';

export interface HttpProbeOptions {
  host: string;
  port: number;
  /** An answer later than this counts as none: the round leaves requests_in_flight out. */
  timeoutMs: number;
  clock: Clock;
}

/** Largest body read from the workload; its answers are a few dozen bytes. */
const MAX_BODY_BYTES = 16 * 1024;

interface Answer {
  status: number;
  body: string;
}

/** GET on the workload with a deadline on the Clock, on a fresh connection each time (no keep-alive agent). */
function get(options: HttpProbeOptions, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      options.clock.clearTimeout(timer);
      fn();
    };
    const req = http.get({ host: options.host, port: options.port, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          req.destroy();
          finish(() => resolve({ status: res.statusCode ?? 0, body: '' }));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () =>
        finish(() => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') })),
      );
      res.on('error', (error) => finish(() => reject(error)));
    });
    req.on('error', (error) => finish(() => reject(error)));
    const timer = options.clock.setTimeout(() => {
      finish(() => reject(new CallTimeoutError(`GET ${path} on the workload`, options.timeoutMs)));
      req.destroy();
    }, options.timeoutMs);
  });
}

/** Reads `{ requestsInFlight }` from `GET /stats`; anything else is `invalid` with the reason. */
export function parseWorkloadStats(answer: Answer): ProbeResult {
  if (answer.status !== 200) return { type: 'invalid', reason: `HTTP ${answer.status}` };
  let value: unknown;
  try {
    value = JSON.parse(answer.body);
  } catch {
    return { type: 'invalid', reason: 'body is not JSON' };
  }
  const figure = (value as { requestsInFlight?: unknown } | null)?.requestsInFlight;
  if (typeof figure !== 'number' || !Number.isSafeInteger(figure) || figure < 0) {
    return { type: 'invalid', reason: `requestsInFlight is ${JSON.stringify(figure) ?? 'missing'}` };
  }
  return { type: 'ok', requestsInFlight: figure };
}

/** Reads the workload's `GET /stats` for requests_in_flight (the probes are probe-checks.ts'). */
export function httpWorkloadProbe(options: HttpProbeOptions): WorkloadProbe {
  return {
    stats: async () => {
      try {
        return parseWorkloadStats(await get(options, '/stats'));
      } catch (error) {
        return { type: 'no-answer', reason: error instanceof Error ? error.message : String(error) };
      }
    },
  };
}
