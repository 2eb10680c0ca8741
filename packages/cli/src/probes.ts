import net from 'node:net';
import type { SpStatus } from '@faultline/stream-processor';

/** Whether something accepts TCP connections on host:port within 500 ms (a broker, a workload). */
export function portAnswers(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(500);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/**
 * An SP node's `GET /status` on loopback (its status server), or undefined
 * when the node does not answer within `timeoutMs`: down, paused, restarting.
 */
export async function spStatus(statusPort: number, timeoutMs = 1_000): Promise<SpStatus | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${statusPort}/status`, { signal: AbortSignal.timeout(timeoutMs) });
    return response.ok ? ((await response.json()) as SpStatus) : undefined;
  } catch {
    return undefined;
  }
}
