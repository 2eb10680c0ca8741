import net from 'node:net';

/** Every test service listens on loopback only. */
export const LOOPBACK_HOST = '127.0.0.1';

/**
 * Ports handed out under vitest, by its pool slot (`VITEST_POOL_ID`, 1 to
 * maxWorkers): slot k gets PORT_SPAN ports from PORT_BASE + (k − 1) ×
 * PORT_SPAN, below Linux's ephemeral range (32768 and up), where the OS puts
 * a `listen(0)` or an outgoing connection. Test files run two at a time, and a
 * port the OS had just handed to one (asked for, closed, then given to a
 * child process to listen on, or left while its PostgreSQL is stopped and
 * started again) could be handed to the other meanwhile: EADDRINUSE in a
 * child that never started. Disjoint ranges per slot, a port never handed out
 * twice by one process, each checked free when handed out.
 */
const PORT_BASE = 20_000;
const PORT_SPAN = 1_500;
const MAX_SLOTS = 8;

const slot = Number(process.env.VITEST_POOL_ID);
/** The next port of this process's range to try; undefined outside vitest (the OS chooses). */
let next: number | undefined =
  Number.isSafeInteger(slot) && slot >= 1 && slot <= MAX_SLOTS
    ? // Each file of a slot starts at a random place in the range: processes of the file before may linger.
      Math.floor(Math.random() * PORT_SPAN)
    : undefined;
let handedOut = 0;

/** Listens on `port` (0: any) of loopback and closes again: the port, or undefined when it is taken. */
function probe(port: number): Promise<number | undefined> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', (error: NodeJS.ErrnoException) => {
      if (port !== 0 && (error.code === 'EADDRINUSE' || error.code === 'EACCES')) resolve(undefined);
      else reject(error);
    });
    server.listen(port, LOOPBACK_HOST, () => {
      const { port: bound } = server.address() as net.AddressInfo;
      server.close(() => resolve(bound));
    });
  });
}

/** A free loopback port: from this test worker's own range under vitest, else one the OS chooses. */
export async function freePort(): Promise<number> {
  if (next === undefined) return (await probe(0)) as number;
  const base = PORT_BASE + (slot - 1) * PORT_SPAN;
  while (handedOut < PORT_SPAN) {
    const port = base + (next % PORT_SPAN);
    next += 1;
    handedOut += 1;
    if ((await probe(port)) !== undefined) return port;
  }
  throw new Error(`freePort: the ${PORT_SPAN} ports of test worker ${slot} (from ${base}) are used up`);
}

/** Whether something accepts TCP connections on host:port right now. */
export function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
