// The ingest benchmark's floor: a "pair" of two processes that moves a
// batch's bytes the way the SP pair must and does nothing else. Its active
// reads the agents' framed Thrift calls, finds each call's seqid, forwards
// `forwardBytes` of the call (the size of the batch's checked form, what the
// passive must hold of it) to its passive, and answers the agent with a
// prebuilt acknowledgement once the passive has acknowledged the forward. No
// decode, no validation, no dedupe, no engine. Whatever the SP does per batch
// beyond moving bytes comes on top of what this costs on the same machine.
//
//   node floor-pair.mjs passive            → prints its port
//   node floor-pair.mjs active PORT BYTES  → prints its port
import net from 'node:net';
import { encodeAckReply } from '@faultline/protocol';

const [role, passivePort, forwardBytes] = process.argv.slice(2);

/** Calls `onFrame(payload)` for each whole [u32 size][payload] frame of a stream. */
function frames(onFrame) {
  let held = Buffer.alloc(0);
  return (chunk) => {
    let buf = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
    let at = 0;
    while (buf.length - at >= 4) {
      const size = buf.readUInt32BE(at);
      if (buf.length - at - 4 < size) break;
      onFrame(buf.subarray(at + 4, at + 4 + size));
      at += 4 + size;
    }
    held = at === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(at));
    buf = undefined;
  };
}

if (role === 'passive') {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    const ack = Buffer.alloc(8);
    ack.writeUInt32BE(4, 0);
    let count = 0;
    const read = frames(() => {
      count += 1;
      ack.writeUInt32BE(count, 4);
      socket.write(Buffer.from(ack));
    });
    socket.on('data', (chunk) => {
      socket.cork();
      read(chunk);
      socket.uncork();
    });
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1', () => console.log(server.address().port));
} else {
  const size = Number(forwardBytes);
  const link = net.connect(Number(passivePort), '127.0.0.1');
  link.setNoDelay(true);
  /** Agent socket and seqid of each forward, in order. */
  const waiting = [];
  const ackTemplate = { agentId: 'php-m-0', sequence: 1, duplicate: false, epoch: 1, replicated: true };
  const touched = new Set();
  const read = frames(() => {
    const { socket, seqid } = waiting.shift();
    if (!touched.has(socket)) {
      touched.add(socket);
      socket.cork();
    }
    socket.write(encodeAckReply(seqid, ackTemplate));
  });
  link.on('data', (chunk) => {
    read(chunk);
    for (const s of touched) s.uncork();
    touched.clear();
  });
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    const read = frames((payload) => {
      // The versioned header: i32 version|type, i32 name size, the name, i32 seqid.
      const nameSize = payload.readInt32BE(4);
      const seqid = payload.readInt32BE(8 + nameSize);
      const forward = Buffer.allocUnsafe(4 + size);
      forward.writeUInt32BE(size, 0);
      payload.copy(forward, 4, 0, Math.min(size, payload.length));
      waiting.push({ socket, seqid });
      link.write(forward);
    });
    socket.on('data', (chunk) => {
      link.cork();
      read(chunk);
      link.uncork();
    });
    socket.on('error', () => {});
  });
  link.on('connect', () => server.listen(0, '127.0.0.1', () => console.log(server.address().port)));
}
