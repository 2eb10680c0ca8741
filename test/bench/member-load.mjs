// The scale benchmark's load: N members, each sending its three stats in a
// batch of its own every interval, signed with its own credential, over a few
// agent connections (each carrying the batches of N ÷ connections members).
// It runs as a child process of its own (scale.bench.mjs forks it), so its CPU
// is measured apart from the SP pair's and the benchmark's, and what it costs
// does not slow the benchmark's own timers.
//
// At 100 000 members that is ~6 700 batches/s: encoding each with thrift's
// client code and signing it every time would take a core of its own. The
// credential covers the member's identity only (member-credential.ts), not a
// batch's sequence or timestamps, so each member's Thrift frame is encoded and
// signed once; every send patches in place the batch sequence (the SP dedupes
// on agent id + sequence, batch-dedupe.ts: each send must be a new one), the
// three stat timestamps (now: the SP refuses stats far from its clock, and the
// window needs them to advance) and the Thrift seqid (the member's index, to
// match the reply). Each member has its own phase in the interval.
//
// Like an agent, it keeps a member's unacknowledged batch and sends it again
// on its next connection; a connection that fails or is told NotActive tries
// the other SP node. Messages from the parent (IPC): `{ t: 'start', … }`,
// `{ t: 'report' }` (answered with the counters), `{ t: 'stop' }`.
import net from 'node:net';
import { HealthStatService, thrift, toBatchWire } from '@faultline/protocol';
import { signedBatch } from '@faultline/protocol/testing';

const TICK_MS = 50;
const RECONNECT_MS = 100;
// Unlikely i64s to find in the encoded bytes (below 2^53: toBatchWire takes numbers).
const SEQUENCE_SENTINEL = 3_022_110_138_768_471;
const TIMESTAMP_SENTINEL = 4_111_222_333_444_555;
const METRICS = ['load_average', 'memory_consumption', 'requests_in_flight'];

const counters = {
  sent: 0,
  resent: 0,
  acked: 0,
  replicated: 0,
  duplicates: 0,
  notActive: 0,
  invalid: 0,
  applicationErrors: 0,
  /** A member's batch still unacknowledged when its next one was due (it is replaced). */
  overdue: 0,
  connects: 0,
  connectFailures: 0,
  disconnects: 0,
  /** How late the send timer ran, at most. */
  maxTickLagMs: 0,
};
let firstInvalid;

function offsetsOf(frame, value) {
  const needle = Buffer.alloc(8);
  needle.writeBigInt64BE(BigInt(value));
  const offsets = [];
  for (let at = frame.indexOf(needle); at >= 0; at = frame.indexOf(needle, at + 1)) offsets.push(at);
  return offsets;
}

/** One member's framed `publish` call, with where its sequence, timestamps and seqid are. */
function encodeMember(client, lastFrame, key, m) {
  const identity = {
    clusterId: `c-${m % 10}`,
    clusterInstanceId: `c-${m % 10}-1`,
    networkPartitionId: 'np-1',
    partitionId: 'p-1',
    memberId: `m-${m}`,
  };
  const values = [20 + (m % 30), 40 + (m % 20), m % 10];
  const stats = METRICS.map((healthDescription, i) => ({
    ...identity,
    healthDescription,
    value: values[i],
    timestamp: TIMESTAMP_SENTINEL,
  }));
  client.send_publish(
    toBatchWire(signedBatch(key, { agentId: identity.memberId, sequence: SEQUENCE_SENTINEL, stats })),
  );
  const frame = lastFrame();
  const [sequenceAt, ...more] = offsetsOf(frame, SEQUENCE_SENTINEL);
  const timestampsAt = offsetsOf(frame, TIMESTAMP_SENTINEL);
  if (sequenceAt === undefined || more.length > 0 || timestampsAt.length !== 3) {
    throw new Error(`member-load: member ${m}: sentinels not found once each in the encoded batch`);
  }
  // Framed, strict binary protocol: length, version|type, name length, "publish", seqid.
  const nameLength = frame.readInt32BE(8);
  if (frame.readUInt32BE(4) >>> 16 !== 0x8001 || frame.toString('latin1', 12, 12 + nameLength) !== 'publish') {
    throw new Error('member-load: unexpected Thrift framing');
  }
  return { frame, sequenceAt, timestampsAt, seqidAt: 12 + nameLength };
}

class Lane {
  constructor(gen, index) {
    this.gen = gen;
    this.index = index;
    this.port = gen.ports[gen.activeIndex];
    this.socket = undefined;
    this.connected = false;
    /** member index → the sequence of its batch not yet acknowledged */
    this.outstanding = new Map();
    this.input = Buffer.alloc(0);
    this.slots = [];
  }

  connect() {
    if (this.gen.stopped) return;
    const socket = net.connect(this.port, '127.0.0.1');
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('error', () => {});
    socket.on('connect', () => {
      if (this.socket !== socket) return;
      this.connected = true;
      counters.connects += 1;
      this.input = Buffer.alloc(0);
      // What it sent before and got no answer for goes again, as an agent resends its unacknowledged batches.
      const frames = [...this.outstanding.keys()].map((m) => this.gen.templates[m].frame);
      counters.resent += frames.length;
      if (frames.length > 0) socket.write(Buffer.concat(frames));
    });
    socket.on('data', (chunk) => {
      if (this.socket === socket) this.receive(chunk);
    });
    socket.on('close', () => {
      if (this.socket !== socket) return;
      if (this.connected) counters.disconnects += 1;
      else counters.connectFailures += 1;
      this.socket = undefined;
      this.connected = false;
      this.switchPort();
    });
  }

  /** The other node, after a short pause. */
  switchPort() {
    if (this.gen.stopped) return;
    const [a, b] = this.gen.ports;
    this.port = this.port === a ? b : a;
    setTimeout(() => this.connect(), RECONNECT_MS + Math.random() * RECONNECT_MS);
  }

  send(members, now) {
    const frames = [];
    const timestamp = BigInt(now);
    for (const m of members) {
      const t = this.gen.templates[m];
      const sequence = ++this.gen.sequences[m];
      t.frame.writeBigInt64BE(BigInt(sequence), t.sequenceAt);
      for (const at of t.timestampsAt) t.frame.writeBigInt64BE(timestamp, at);
      t.frame.writeInt32BE(m, t.seqidAt);
      if (this.outstanding.has(m)) counters.overdue += 1;
      this.outstanding.set(m, sequence);
      frames.push(t.frame);
    }
    counters.sent += frames.length;
    // Copied by concat: the templates are patched again at the next interval.
    if (this.connected && frames.length > 0) this.socket.write(Buffer.concat(frames));
  }

  receive(chunk) {
    let input = this.input.length === 0 ? chunk : Buffer.concat([this.input, chunk]);
    let at = 0;
    while (input.length - at >= 4) {
      const length = input.readInt32BE(at);
      if (input.length - at - 4 < length) break;
      this.reply(input.subarray(at + 4, at + 4 + length));
      at += 4 + length;
    }
    input = input.subarray(at);
    this.input = input.length === 0 ? Buffer.alloc(0) : Buffer.from(input);
  }

  /** One reply: strict binary message header, then the result struct's first field (0 ack, 1 NotActive, 2 InvalidBatch). */
  reply(frame) {
    const type = frame.readUInt32BE(0) & 0xff;
    const nameLength = frame.readInt32BE(4);
    const m = frame.readInt32BE(8 + nameLength);
    let p = 12 + nameLength;
    if (type !== 2) {
      counters.applicationErrors += 1; // a TApplicationException: the server failed the call
      this.outstanding.delete(m);
      return;
    }
    const fieldType = frame[p];
    const fid = frame.readInt16BE(p + 1);
    p += 3;
    if (fieldType === 12 && fid === 0) {
      const ack = readAck(frame, p);
      if (this.outstanding.get(m) === ack.sequence) this.outstanding.delete(m);
      counters.acked += 1;
      if (ack.replicated) counters.replicated += 1;
      if (ack.duplicate) counters.duplicates += 1;
    } else if (fid === 1) {
      counters.notActive += 1;
      this.socket?.destroy(); // 'close' tries the other node
    } else {
      counters.invalid += 1;
      this.outstanding.delete(m);
      firstInvalid ??= frame
        .toString('latin1', p)
        .replace(/[^\x20-\x7e]+/g, ' ')
        .trim();
    }
  }
}

/** The BatchAck fields the load counts: sequence (2), duplicate (3), replicated (5). */
function readAck(frame, start) {
  const ack = { sequence: undefined, duplicate: false, replicated: false };
  let p = start;
  for (;;) {
    const type = frame[p];
    if (type === 0 || type === undefined) return ack;
    const id = frame.readInt16BE(p + 1);
    p += 3;
    if (type === 11) p += 4 + frame.readInt32BE(p);
    else if (type === 10) {
      if (id === 2) ack.sequence = Number(frame.readBigInt64BE(p));
      p += 8;
    } else if (type === 8) p += 4;
    else if (type === 2) {
      if (id === 3) ack.duplicate = frame[p] === 1;
      if (id === 5) ack.replicated = frame[p] === 1;
      p += 1;
    } else return ack; // not a BatchAck field this reader knows: what was read stands
  }
}

function start({ ports, activeIndex, members, connections, intervalMs, key }) {
  const memberKey = Buffer.from(key, 'hex');
  let frame;
  const transport = new thrift.TFramedTransport(undefined, (buf) => {
    frame = Buffer.from(buf);
  });
  const client = new HealthStatService.Client(transport, thrift.TBinaryProtocol);
  const encodeStarted = performance.now();
  const templates = new Array(members);
  for (let m = 0; m < members; m++) templates[m] = encodeMember(client, () => frame, memberKey, m);
  const gen = {
    ports,
    activeIndex,
    templates,
    sequences: new Float64Array(members),
    stopped: false,
  };
  const lanes = Array.from({ length: connections }, (_, i) => new Lane(gen, i));
  // Member m rides lane m % connections as its k-th member (k = ⌊m / connections⌋); a lane's members have their
  // phases spread evenly over the interval, so the batches are too, on every lane.
  const slots = Math.max(1, Math.round(intervalMs / TICK_MS));
  const perLane = Math.ceil(members / connections);
  for (const lane of lanes) lane.slots = Array.from({ length: slots }, () => []);
  for (let m = 0; m < members; m++) {
    const k = Math.floor(m / connections);
    lanes[m % connections].slots[Math.floor((k * slots) / perLane)].push(m);
  }
  for (const lane of lanes) lane.connect();
  const t0 = performance.now();
  let tick = 0;
  let timer;
  const loop = () => {
    const now = performance.now();
    counters.maxTickLagMs = Math.max(counters.maxTickLagMs, now - (t0 + tick * TICK_MS));
    const wall = Date.now();
    while (t0 + tick * TICK_MS <= now) {
      const slot = tick % slots;
      for (const lane of lanes) lane.send(lane.slots[slot], wall);
      tick += 1;
    }
    timer = setTimeout(loop, Math.max(0, t0 + tick * TICK_MS - performance.now()));
  };
  loop();
  return {
    encodeMs: t0 - encodeStarted,
    report: () => {
      const byPort = {};
      let outstanding = 0;
      for (const lane of lanes) {
        outstanding += lane.outstanding.size;
        if (lane.connected) byPort[lane.port] = (byPort[lane.port] ?? 0) + 1;
      }
      return { ...counters, outstanding, connectedByPort: byPort, firstInvalid };
    },
    stop: () => {
      gen.stopped = true;
      clearTimeout(timer);
      for (const lane of lanes) lane.socket?.destroy();
    },
  };
}

let load;
process.on('message', (message) => {
  try {
    if (message.t === 'start') {
      load = start(message);
      process.send({ t: 'started', encodeMs: load.encodeMs });
    } else if (message.t === 'report') {
      process.send({ t: 'report', report: load?.report() });
    } else if (message.t === 'stop') {
      load?.stop();
      process.send({ t: 'stopped', report: load?.report() }, () => process.exit(0));
    }
  } catch (error) {
    process.send({ t: 'error', message: String(error?.stack ?? error) });
  }
});
// The benchmark is gone (ended or crashed): so is its load.
process.on('disconnect', () => process.exit(0));
