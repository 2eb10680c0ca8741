import { z } from 'zod';
import { NONCE_PATTERN, PROOF_PATTERN } from './sync-auth.js';

/** Messages of the event-sync link (active → passive unless noted), in the order a link exchanges them. */
/** The most members or agents one chunk of a streamed snapshot may carry. */
export const MAX_CHUNK_ITEMS = 20_000;

const dedupeState = z.object({ agents: z.array(z.tuple([z.string(), z.number().int(), z.array(z.number().int())])) });
const nodeId = z.string().min(1).max(128);
const nonce = z.string().regex(NONCE_PATTERN);
const proof = z.string().regex(PROOF_PATTERN);

export const syncMessageSchema = z.discriminatedUnion('t', [
  /** Passive → active, on connect: who it is and the nonce the active must prove the key over. */
  z.object({ t: z.literal('challenge'), nodeId, nonce }),
  /** The active's proof of the key (sync-auth.ts), with its own nonce for the passive's proof. */
  z.object({ t: z.literal('auth'), nodeId, nonce, proof }),
  /** Passive → active: its proof of the key; the active sends its hello only after checking it. */
  z.object({ t: z.literal('authenticated'), proof }),
  /** Who is active, under which epoch (the passive checks both against the lease in the database). */
  z.object({ t: z.literal('hello'), nodeId, epoch: z.number().int().positive() }),
  /** Passive → active: the link is taken under this epoch; the snapshot may follow. */
  z.object({ t: z.literal('welcome'), epoch: z.number().int().positive() }),
  /** The whole state at link time, in one message (an older active); every later batch applies on top of it. */
  z.object({ t: z.literal('snapshot'), seq: z.number().int().min(0), engine: z.unknown(), dedupe: dedupeState }),
  /**
   * The start of a streamed snapshot (snapshot-stream.ts): the engine's header
   * and the link sequence it starts from. Chunks follow, with the batches
   * accepted meanwhile between them; each chunk replaces what the passive
   * holds of the members and agents in it.
   */
  z.object({
    t: z.literal('snapshot-begin'),
    seq: z.number().int().min(0),
    engine: z.unknown(),
    agents: z.number().int().min(0),
  }),
  /** Chunk `n` (1, 2, …) of the snapshot: engine rows or dedupe rows (each checked by its owner). */
  z.object({
    t: z.literal('snapshot-chunk'),
    n: z.number().int().positive(),
    engine: z.unknown().optional(),
    dedupe: z.array(z.unknown()).max(MAX_CHUNK_ITEMS).optional(),
  }),
  /** The snapshot is whole after `chunks` chunks. */
  z.object({ t: z.literal('snapshot-end'), chunks: z.number().int().min(0) }),
  /** Passive → active: chunk `n` is applied (the active sends a few ahead, no more). */
  z.object({ t: z.literal('snapshot-ack'), n: z.number().int().positive() }),
  /** One accepted batch, stamped with the link sequence (its content is checked by the batch validator). */
  z.object({ t: z.literal('batch'), seq: z.number().int().positive(), batch: z.unknown() }),
  /** The active published these outputs (durable in its outbox). */
  z.object({ t: z.literal('published'), ids: z.array(z.string().min(1)).max(100_000) }),
  /** Passive → active: everything up to `seq` is applied. */
  z.object({ t: z.literal('ack'), seq: z.number().int().min(0) }),
]);

export type SyncMessage = z.infer<typeof syncMessageSchema>;
export type SnapshotMessage = Extract<SyncMessage, { t: 'snapshot' }>;
export type SnapshotBeginMessage = Extract<SyncMessage, { t: 'snapshot-begin' }>;
export type SnapshotChunkMessage = Extract<SyncMessage, { t: 'snapshot-chunk' }>;
