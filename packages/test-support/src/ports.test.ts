import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort, LOOPBACK_HOST } from './ports.js';

const listen = (server: net.Server, port: number) =>
  new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, LOOPBACK_HOST, () => resolve());
  });

describe('freePort under vitest', () => {
  it("hands out this worker's own ports, below the ephemeral range, never twice, skipping a taken one", async () => {
    const slot = Number(process.env.VITEST_POOL_ID);
    expect(slot).toBeGreaterThanOrEqual(1);
    const base = 20_000 + (slot - 1) * 1_500;
    const inRange = (port: number) => port >= base && port < base + 1_500;
    const first = await freePort();
    const second = await freePort();
    expect([first, second].every(inRange)).toBe(true);
    expect(second).not.toBe(first);
    // The one it would try next is taken: it goes on to another.
    const taken = base + ((second - base + 1) % 1_500);
    const server = net.createServer();
    await listen(server, taken);
    try {
      const third = await freePort();
      expect(inRange(third)).toBe(true);
      expect([first, second, taken]).not.toContain(third);
    } finally {
      server.close();
    }
  });
});
