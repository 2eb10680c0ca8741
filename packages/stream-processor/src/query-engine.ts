import type { AnyBatch, Envelope } from '@faultline/protocol';

/**
 * What the SP node asks of its query engine (the CEP monitor implements it).
 * Both nodes apply every accepted batch, in the same order; only the active
 * lets outputs out (`activate`), the passive keeps them suppressed: a hot
 * standby that needs no replay to take over.
 */
/**
 * What the node knows of the gap before it became active (node.ts,
 * `activationOf`): how long members may have had no active node to report to.
 */
export interface Activation {
  /** This node took its own lease back, and its engine's state stayed its own: no other active came between. */
  resumed: boolean;
  /**
   * An upper bound (ms) of how long members may have had no active node
   * whose stats reach this engine; undefined when the node cannot tell (its
   * state may be stale), so the engine grants its whole grace period.
   */
  unheardMs?: number;
}

export interface EngineExportStream {
  readonly header: unknown;
  /** The next chunk of at most `maxItems` members; undefined when there is no more. */
  next(maxItems: number): unknown | undefined;
}

export interface QueryEngine {
  /** One accepted batch, as objects or in columns (`statsOf` reads either). */
  apply(batch: AnyBatch): void;
  /** This node became active under `epoch`: outputs may flow. */
  activate(epoch: number, activation?: Activation): void;
  /** This node is passive (again): outputs stay suppressed. */
  deactivate(): void;
  /** Plain JSON of the whole state (the status server's `/engine`; a peer that sends its snapshot in one piece). */
  exportState(): unknown;
  /** One member's part of `exportState()`, in its shape (the status server's `/engine?member=`). */
  exportMember?(memberId: string): unknown;
  /** Members the state holds: the status server makes the whole of it only up to a bound. */
  trackedMembers?(): number;
  importState(state: unknown): void;
  /**
   * The state for a passive that joins, as a header and then chunks, each
   * encoded from the state as it is when asked for (see SyncLink): the
   * active never stops for a copy of the whole of it.
   */
  exportStream(): EngineExportStream;
  /** A streamed import's start; throws (the link is dropped) when the header is malformed. */
  importBegin(header: unknown): void;
  /** One chunk: replaces what the engine holds of each member in it; throws when malformed, applying none of it. */
  importChunk(chunk: unknown): void;
  importEnd(): void;
  /** A small summary for the status call. */
  status(): Record<string, unknown>;
  close(): void;
  /** Engines with outputs (the CEP monitor) emit them here, on the active only. */
  onOutput?(listener: (envelope: Envelope) => void): void;
  /** Passive: the active has published these outputs; drop them from what a takeover would publish. */
  confirm?(ids: readonly string[]): void;
  /** The topology removed this member (MemberTerminatedEvent): stop watching it. */
  forget?(memberId: string): void;
}

/** Where the active's outputs go: the durable MQTT publisher. */
export interface OutputSink {
  /**
   * Resolves once the envelope is durable (in the outbox); `onAcked` is
   * called once a broker has acknowledged it (PUBACK), not before.
   */
  publish(envelope: Envelope, options?: { onAcked?: () => void }): Promise<void>;
}
