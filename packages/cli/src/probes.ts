import net from 'node:net';
import type { SpStatus } from '@faultline/stream-processor';

/** Without a signal, a connect probe gives up after this. */
const CONNECT_TIMEOUT_MS = 500;

/** A signal that aborts after `deadline` ms, or `deadline` itself. */
const signalOf = (deadline: number | AbortSignal): AbortSignal =>
  typeof deadline === 'number' ? AbortSignal.timeout(deadline) : deadline;

/**
 * Connects to host:port and resolves `decide(socket)`'s verdict: false on a
 * refused connection, or when `deadline` passes first.
 */
function probeSocket(
  host: string,
  port: number,
  deadline: number | AbortSignal,
  decide: (socket: net.Socket, verdict: (alive: boolean) => void) => void,
): Promise<boolean> {
  const signal = signalOf(deadline);
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve(false);
      return;
    }
    const socket = net.connect({ host, port });
    const verdict = (alive: boolean) => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(alive);
    };
    const onAbort = () => verdict(false);
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('error', () => verdict(false));
    decide(socket, verdict);
  });
}

/**
 * Whether something accepts TCP connections on host:port (a broker starting,
 * a workload) before `deadline` (ms, or a signal). A process that is stopped
 * still passes: the kernel completes the handshake for it (mqttAnswers does not).
 */
export function portAnswers(
  host: string,
  port: number,
  deadline: number | AbortSignal = CONNECT_TIMEOUT_MS,
): Promise<boolean> {
  return probeSocket(host, port, deadline, (socket, verdict) => socket.once('connect', () => verdict(true)));
}

/**
 * An MQTT 5 CONNECT with no credentials (client id `faultline-liveness`).
 * aedes speaks MQTT 3.1.1 and answers CONNACK "unacceptable protocol version"
 * before any authentication (MQTT-3.1.2-2): no refusal logged, nothing
 * counted. Mosquitto answers it by refusing the anonymous client. With TLS on
 * the port, the TLS layer answers with an alert. Any of these is an answer.
 */
const LIVENESS_CONNECT = Buffer.from([
  0x10, // CONNECT
  0x1f, // remaining length: 10 (variable header) + 1 (properties) + 2 + 18 (client id)
  0x00,
  0x04,
  ...Buffer.from('MQTT'),
  0x05, // protocol level 5
  0x02, // clean start
  0x00,
  0x00, // keep alive: none
  0x00, // no properties
  0x00,
  0x12,
  ...Buffer.from('faultline-liveness'),
]);

/**
 * Whether the broker on host:port answers an MQTT CONNECT (any bytes back,
 * or it closes the connection) before `deadline`: its event loop turns. A
 * stopped broker's kernel accepts the connection but nothing answers it.
 */
export function mqttAnswers(host: string, port: number, deadline: number | AbortSignal): Promise<boolean> {
  return probeSocket(host, port, deadline, (socket, verdict) => {
    socket.once('connect', () => socket.write(LIVENESS_CONNECT));
    socket.once('data', () => verdict(true));
    socket.once('end', () => verdict(true));
  });
}

/**
 * Where to reach a port bound to `host` (a node's `statusHost` or
 * `healthHost`): a wildcard address is reached on loopback; an IPv6 literal
 * goes in brackets. No host: loopback.
 */
export function urlHost(host: string | undefined): string {
  if (host === undefined || host === '' || host === '0.0.0.0' || host === '::' || host === '[::]') return '127.0.0.1';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/**
 * An SP node's `GET /status` (its status server, on `statusHost`), or
 * undefined when the node does not answer before `deadline` (ms, or a
 * signal): down, paused, restarting.
 */
export async function spStatus(
  node: { statusPort: number; statusHost?: string | undefined },
  deadline: number | AbortSignal = 1_000,
): Promise<SpStatus | undefined> {
  try {
    const response = await fetch(`http://${urlHost(node.statusHost)}:${node.statusPort}/status`, {
      signal: signalOf(deadline),
    });
    return response.ok ? ((await response.json()) as SpStatus) : undefined;
  } catch {
    return undefined;
  }
}

/** What an autoscaler node's `GET /health` answers (the fields the supervisor reads). */
export interface AutoscalerHealth {
  node: string;
  role: 'ACTIVE' | 'PASSIVE';
}

/**
 * An autoscaler node's `GET /health` on `healthHost`:`healthPort`: its
 * answer when it is 200 and names the node (not another process on the
 * port), else undefined.
 */
export async function autoscalerHealth(
  node: { id: string; healthPort: number; healthHost?: string | undefined },
  deadline: number | AbortSignal = 1_000,
): Promise<AutoscalerHealth | undefined> {
  const nodeId = node.id;
  try {
    const response = await fetch(`http://${urlHost(node.healthHost)}:${node.healthPort}/health`, {
      signal: signalOf(deadline),
    });
    if (!response.ok) return undefined;
    const body = (await response.json()) as Partial<AutoscalerHealth> | null;
    return body?.node === nodeId ? (body as AutoscalerHealth) : undefined;
  } catch {
    return undefined;
  }
}
