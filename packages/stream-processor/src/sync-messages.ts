import { z } from 'zod';
import { NONCE_PATTERN, PROOF_PATTERN } from './sync-auth.js';

/** Messages of the event-sync link (active → passive unless noted), in the order a link exchanges them. */
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
  /** The whole state at link time; every later batch applies on top of it. */
  z.object({ t: z.literal('snapshot'), seq: z.number().int().min(0), engine: z.unknown(), dedupe: dedupeState }),
  /** One accepted batch, stamped with the link sequence (its content is checked by the batch validator). */
  z.object({ t: z.literal('batch'), seq: z.number().int().positive(), batch: z.unknown() }),
  /** The active published these outputs (durable in its outbox). */
  z.object({ t: z.literal('published'), ids: z.array(z.string().min(1)).max(100_000) }),
  /** Passive → active: everything up to `seq` is applied. */
  z.object({ t: z.literal('ack'), seq: z.number().int().min(0) }),
]);

export type SyncMessage = z.infer<typeof syncMessageSchema>;
export type SnapshotMessage = Extract<SyncMessage, { t: 'snapshot' }>;
