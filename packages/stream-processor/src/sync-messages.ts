import { z } from 'zod';

/** Messages of the event-sync link (active → passive unless noted). */
const dedupeState = z.object({ agents: z.array(z.tuple([z.string(), z.number().int(), z.array(z.number().int())])) });

export const syncMessageSchema = z.discriminatedUnion('t', [
  /** Opens the link: who is active, under which epoch. */
  z.object({ t: z.literal('hello'), nodeId: z.string().min(1), epoch: z.number().int().positive() }),
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
