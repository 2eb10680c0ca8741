// The scale benchmark's autoscaler: the real subscriber (presence, dedupe, the
// whole envelope decoded and checked) on the summarized-health-stats topics,
// counting what it receives. A deployment of 100 000 members runs the
// autoscaler on a machine of its own; here it shares two cores with the SP
// pair, both brokers, PostgreSQL and the load, and decoding a tick's ~690
// envelopes of up to 64 KiB took half a core for a second or two at every tick,
// while the active made that tick. So it runs in a process of its own at a
// lower priority (scale.bench.mjs sets nice 10 on it): it gets what the pair
// leaves, it is still there for the publisher's presence, and its CPU is
// measured apart. Messages from the parent (IPC): `{ t: 'start', brokers,
// credentials }`, `{ t: 'report' }` (answered with the count), `{ t: 'stop' }`.
import { createSubscriber } from '@faultline/messaging';

let subscriber;
let received = 0;

process.on('message', async (message) => {
  try {
    if (message.t === 'start') {
      subscriber = createSubscriber({
        brokers: message.brokers,
        credentials: message.credentials,
        role: 'autoscaler',
        clientId: 'autoscaler',
        topics: ['summarized-health-stats/#'],
        onEnvelope: () => {
          received += 1;
        },
      });
      subscriber.start();
      process.send({ t: 'started' });
    } else if (message.t === 'report') {
      process.send({ t: 'report', received });
    } else if (message.t === 'stop') {
      await subscriber?.close();
      process.send({ t: 'stopped', received });
      process.disconnect();
    }
  } catch (error) {
    process.send({ t: 'error', message: error instanceof Error ? error.message : String(error) });
  }
});
// The parent gone (a benchmark killed): nothing to subscribe for.
process.on('disconnect', () => process.exit(0));
