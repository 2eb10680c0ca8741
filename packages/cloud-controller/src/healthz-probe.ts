import http from 'node:http';
import type { Clock } from '@faultline/core';
import type { Endpoint } from '@faultline/protocol';

/** How a `GET /healthz` on a member's workload went: its status, or why there was none. */
export type HealthzAnswer = { status: number } | { status: undefined; reason: string };

/**
 * One `GET /healthz` on `address`, the cartridge agent's activation check, on
 * a fresh connection (no keep-alive: the connect is part of the check). Only
 * the status line counts; the body is never read (the connection is closed
 * once the status is in). No answer within `timeoutMs` on `clock` (a hung
 * instance: the kernel accepts the connection, nobody answers) is none.
 * Never rejects.
 */
export function getHealthz(address: Endpoint, timeoutMs: number, clock: Clock): Promise<HealthzAnswer> {
  return getStatus(address, '/healthz', timeoutMs, clock);
}

/** One `GET <path>` on `address`, as getHealthz: only the status line is read. Never rejects. */
export function getStatus(address: Endpoint, urlPath: string, timeoutMs: number, clock: Clock): Promise<HealthzAnswer> {
  return new Promise((resolve) => {
    let settled = false;
    const finish = (answer: HealthzAnswer) => {
      if (settled) return;
      settled = true;
      clock.clearTimeout(timer);
      req.destroy();
      resolve(answer);
    };
    const req = http.get({ host: address.host, port: address.port, path: urlPath, agent: false }, (res) =>
      finish({ status: res.statusCode ?? 0 }),
    );
    req.on('error', (error) => finish({ status: undefined, reason: error.message }));
    const timer = clock.setTimeout(
      () => finish({ status: undefined, reason: `no answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
  });
}
