import { ClosedError, type Logger, type TimerHandle } from '@faultline/core';
import {
  type AnyBatch,
  type Envelope,
  type EnvelopeOf,
  HEALTH_DESCRIPTIONS,
  type HealthDescription,
  isStatColumns,
  type MemberIdentity,
  type Metric,
} from '@faultline/protocol';
import { FaultDetector, type FaultInfo } from './fault-detector.js';
import { type CepEngineOptions, type ResolvedCepEngineOptions, resolveCepEngineOptions } from './options.js';
import { type Output, OutputLedger } from './output-ledger.js';
import { FAULT_STREAM_PREFIX, faultOutput, faultStream, groupOutputs, type OversizedSummaryEntry } from './outputs.js';
import { CEP_STATE_VERSION, type CepState, CepStateError, parseCepState } from './state.js';
import {
  CEP_STREAM_VERSION,
  type CepStreamChunk,
  type CepStreamHeader,
  ChunkWriter,
  MAX_CHUNK_ROWS,
  parseChunk,
  parseStreamHeader,
} from './state-stream.js';
import { type GroupSummary, type SummaryJob, WindowStats } from './window-stats.js';

export type CepRole = 'PASSIVE' | 'ACTIVE' | 'CLOSED';

/**
 * What the node knows of the gap before an activation (the second argument
 * of the stream processor's `QueryEngine.activate`, which this mirrors).
 */
export interface CepActivation {
  /** The node takes its own lease back and its state stayed its own: no other active came between. */
  resumed?: boolean;
  /**
   * An upper bound of how long members may have had no active node whose
   * stats reach this engine (ms). Known and within graceAfterTakeoverMs,
   * exactly that is given back to every member, but no more than
   * graceAfterTakeoverMs in all since its last stat (a flapping lease);
   * unknown or longer, every member gets the whole grace.
   */
  unheardMs?: number;
}
export type OutputListener = (envelope: Envelope) => void;

/** A streamed export: the header at once, then chunks of at most `maxMembers` members (and as many watermarks). */
export interface CepExportStream {
  readonly header: CepStreamHeader;
  /** The next chunk, encoded from the state as it is now; undefined once every member was sent. */
  next(maxMembers: number): CepStreamChunk | undefined;
}

/** The status call's summary (a type alias, so it is a `Record<string, unknown>` as the SP node expects). */
export type CepStatus = {
  engine: 'cep';
  role: CepRole;
  epoch: number | undefined;
  /** Members tracked by the fault detector, alive and faulted. */
  members: number;
  faulted: number;
  /** (cluster, network partition) pairs with samples in the window. */
  clusters: number;
  /** Outputs held for the active's confirmation (passive only). */
  pendingOutputs: number;
  /** Pending outputs the bound dropped (summaries first; see faultsDropped). */
  outputsDropped: number;
  /** Pending faults the bound dropped: confirmations are not arriving. */
  faultsDropped: number;
  /** Pending summaries replaced by a newer tick's. */
  outputsSuperseded: number;
} & CepCounters;

export type CepCounters = {
  statsApplied: number;
  /** Stats of a faulted life that arrived after its fault (not newer than the last seen): no new life. */
  lateStats: number;
  /** Stats of a forgotten member, not newer than its last: ignored. */
  ignoredStats: number;
  /**
   * ports_not_open stats older than the member's newest stat: ignored. A later
   * round without one says the workload answered its liveness probe then (a
   * resend after a failover, a batch that came late).
   */
  stalePortsNotOpen: number;
  faultsDeclared: number;
  faultsEmitted: number;
  /**
   * MemberFaults emitted again, under their first id, at a summary tick while
   * active (the member is still faulted and not forgotten): not in faultsEmitted.
   */
  faultsReannounced: number;
  /** Pending timeout faults declared while following no active, taken back at a takeover (see activate). */
  faultsReopened: number;
  /** Times the detector found its own process had not run for over a second (deadlines moved by the stall). */
  detectorStalls: number;
  summariesComputed: number;
  summariesEmitted: number;
  /** Member entries left out of a summary: no envelope within maxMessageBytes could carry one (see cep.summary_entry_too_large). */
  summaryEntriesTooLarge: number;
  /** Outputs not kept or emitted because the active had already published them. */
  outputsAlreadyPublished: number;
  /** Summary ticks this node, passive, did not compute: the active had published them first (passiveTickWaitMs). */
  summaryTicksLeftToActive: number;
  confirmations: number;
  listenerErrors: number;
};

/**
 * The CEP monitor's query engine. It has the shape of the stream processor's
 * `QueryEngine` (apply, activate, deactivate, exportState, importState,
 * status, close) without depending on it, plus what only the CEP needs.
 */
export interface CepEngine {
  /** Applies a batch of health stats (both nodes, same order). Deadlines run on this node's clock. */
  apply(batch: AnyBatch): void;
  /**
   * This node became active under `epoch`: pending outputs go out stamped with
   * it. A pending timeout fault (one this node declared while passive, never
   * confirmed by an active) is reopened instead. Then every member gets back
   * the time it could not be heard (`activation.unheardMs`, when known and
   * within graceAfterTakeoverMs; at most graceAfterTakeoverMs in all since
   * its last stat), else the whole grace period.
   */
  activate(epoch: number, activation?: CepActivation): void;
  /** Passive (again): outputs are held until the active confirms them. */
  deactivate(): void;
  exportState(): CepState;
  /** One member's part of `exportState()`: its detector row, its samples, whether it is forgotten; no outputs. */
  exportMember(memberId: string): Pick<CepState, 'version' | 'exportedAt' | 'members' | 'forgotten' | 'series'>;
  /** Members the detector tracks. */
  trackedMembers(): number;
  /** Replaces the whole state with a peer's export; throws FL_ERR_STATE_INVALID naming the first bad field. */
  importState(state: unknown): void;
  /** The state as a header and chunks, each encoded when asked for (state-stream.ts). */
  exportStream(): CepExportStream;
  /** A streamed import's start: the state becomes the header's, with no member; throws FL_ERR_STATE_INVALID. */
  importBegin(header: unknown): void;
  /** One chunk, checked whole before any of it applies; throws FL_ERR_STATE_INVALID naming the bad row. */
  importChunk(chunk: unknown): void;
  /** The last chunk has come. */
  importEnd(): void;
  status(): CepStatus;
  close(): void;
  /** The topology removed the member (MemberTerminatedEvent): no more detection, no more member summaries. */
  forget(memberId: string): void;
  /** The active published these output ids: the passive no longer holds them. */
  confirm(ids: readonly string[]): void;
  /** Receives every output while active, epoch set. Returns the unsubscribe. */
  onOutput(listener: OutputListener): () => void;
  readonly role: CepRole;
}

/** A timeout MemberFault (not a ports_not_open, which is a stat's own statement). */
function isTimeoutFault(output: Output): boolean {
  return (
    output.kind === 'fault' && output.envelope.type === 'MemberFaultEvent' && output.envelope.data.reason === 'timeout'
  );
}

const METRIC_OF: Readonly<Record<Exclude<HealthDescription, 'ports_not_open'>, Metric>> = {
  load_average: 'LoadAverage',
  memory_consumption: 'MemoryConsumption',
  requests_in_flight: 'RequestsInFlight',
};

/**
 * How long one turn of the event loop may spend on a summary tick before the rest waits for the next
 * turn. A turn also reads the agents' frames (up to 5 ms of them) and writes what they answer: with
 * 5 ms slices the active's event-loop p99 at 100 000 members was 18 ms in the median 5–10 s window and
 * 149 ms in the worst, with 2 ms 12 and 69 ms (same machine, same hour); the tick takes more turns.
 */
const SUMMARY_SLICE_MS = 2;

/** Forgotten members remembered (to ignore their late stats), oldest forgotten first. */
const MAX_FORGOTTEN = 10_000;
const DROP_WARNING_EVERY_MS = 60_000;

class CepMonitor implements CepEngine {
  private readonly options: ResolvedCepEngineOptions;
  private readonly log: Logger;
  private readonly detector: FaultDetector;
  private readonly windows: WindowStats;
  private readonly ledger: OutputLedger;
  private readonly listeners = new Set<OutputListener>();
  /** memberId → agent timestamp of its last stat when the topology removed it. */
  private readonly forgotten = new Map<string, number>();
  private epoch: number | undefined;
  private closed = false;
  private summaryTimer: TimerHandle | undefined;
  private nextSummaryAt = 0;
  private lastWindowTo = Number.NEGATIVE_INFINITY;
  private lastDropWarning: number | undefined;
  private lastTooLargeWarning: number | undefined;
  private readonly counters: CepCounters = {
    statsApplied: 0,
    lateStats: 0,
    ignoredStats: 0,
    stalePortsNotOpen: 0,
    faultsDeclared: 0,
    faultsEmitted: 0,
    faultsReannounced: 0,
    faultsReopened: 0,
    detectorStalls: 0,
    summariesComputed: 0,
    summariesEmitted: 0,
    summaryEntriesTooLarge: 0,
    outputsAlreadyPublished: 0,
    summaryTicksLeftToActive: 0,
    confirmations: 0,
    listenerErrors: 0,
  };

  constructor(input: CepEngineOptions) {
    this.options = resolveCepEngineOptions(input);
    this.log = this.options.logger.child({ component: 'cep' });
    this.detector = new FaultDetector({
      faultTimeoutMs: this.options.faultTimeoutMs,
      clock: this.options.clock,
      onFault: (member, info) => this.fault(member, info),
      onStall: (ms) => {
        this.counters.detectorStalls += 1;
        this.log.warn('this process did not run: every member got the time back before any fault', {
          event: 'cep.detector_stalled',
          stalledMs: ms,
          role: this.role,
        });
      },
    });
    this.windows = new WindowStats({
      windowMs: this.options.windowMs,
      maxSamplesPerSeries: this.options.maxSamplesPerSeries,
    });
    this.ledger = new OutputLedger(this.options.maxPendingOutputs);
    this.scheduleSummary();
  }

  get role(): CepRole {
    if (this.closed) return 'CLOSED';
    return this.epoch === undefined ? 'PASSIVE' : 'ACTIVE';
  }

  apply(batch: AnyBatch): void {
    if (this.closed) throw new ClosedError('cep engine');
    if (isStatColumns(batch)) {
      // One member's stats: the same steps, stat by stat, with its ids.
      const { ids, descriptions, values, timestamps } = batch;
      for (let i = 0; i < values.length; i++)
        this.applyStat(
          ids,
          HEALTH_DESCRIPTIONS[descriptions[i] as number] as HealthDescription,
          values[i] as number,
          timestamps[i] as number,
        );
      return;
    }
    for (const stat of batch.stats) this.applyStat(stat, stat.healthDescription, stat.value, stat.timestamp);
  }

  /** One stat of `member`'s. */
  private applyStat(member: MemberIdentity, description: HealthDescription, value: number, timestamp: number): void {
    this.counters.statsApplied += 1;
    const { memberId } = member;
    this.importing?.stale?.delete(memberId);
    const gone = this.forgotten.get(memberId);
    if (gone !== undefined) {
      if (timestamp <= gone) {
        this.counters.ignoredStats += 1;
        return;
      }
      // Newer than anything it sent before removal: a member id reused, or an agent that outlived its member.
      this.forgotten.delete(memberId);
    }
    // ports_not_open (1) is a fault of its own (Stratos maps it straight to MemberFault), once per life;
    // it starts no new life: a member faulted already stays faulted, and it carries no sample. An agent
    // sends it once its liveness probe failed past its threshold (README "Probes"); an older agent after
    // one missed answer, which this cannot tell apart (the wire has no agent version): a fault either way.
    if (description === 'ports_not_open') {
      if (value === 1) {
        const known = this.detector.member(memberId);
        if (known && known.state !== 'faulted' && known.lastStatAt !== null && timestamp < known.lastStatAt) {
          this.counters.stalePortsNotOpen += 1;
          return;
        }
        this.detector.faultNow(member, 'ports_not_open', timestamp);
        return;
      }
      // 0: the port answers. A sign of life like any stat, without a sample.
      this.touch(member, timestamp);
      return;
    }
    this.touch(member, timestamp);
    // A late stat is still a true sample of its time: it counts in the window.
    this.windows.add(member, METRIC_OF[description], timestamp, value);
  }

  /** A stat arrived: the member's deadline restarts, or a faulted member starts a new life. */
  private touch(member: MemberIdentity, timestamp: number): void {
    const touched = this.detector.touch(member, timestamp);
    if (touched === 'late') this.counters.lateStats += 1;
    else if (touched === 'revived')
      this.log.info('member reporting again: a new life', { event: 'cep.member_revived', memberId: member.memberId });
  }

  activate(epoch: number, activation: CepActivation = {}): void {
    if (this.closed) return;
    // An import that did not end (the exporter died mid-stream): what this node holds is all there is.
    this.importing = undefined;
    const takeover = this.epoch === undefined;
    this.epoch = epoch;
    if (!takeover) return;
    // Publish what the old active may not have (deterministic ids make repeats harmless), then give
    // the members time to find the new active before any new fault. How much (issue "Robust under
    // strain"): a fresh fault timeout each time kept a lease that changed hands every few seconds from
    // ever faulting anyone. When the node knows how long members could reach no active (a bound from
    // the lease table or its own step-down, see the SP node), exactly that is given back: each member
    // keeps its deadline, that much later, so repeated gaps delay a fault only by their own length.
    // Otherwise (its state may be stale) every member gets the whole grace from now, as before.
    // A timeout fault this node declared itself while passive is not published but reopened: a silence
    // it measured may be its own (a pause, a lagging link: a SIGSTOPped passive that wakes faults every
    // member at once). A member that stays silent is faulted again under the same id.
    const { graceAfterTakeoverMs } = this.options;
    const unheard = activation.unheardMs;
    const givenBack =
      unheard !== undefined && Number.isFinite(unheard) && unheard >= 0 && unheard <= graceAfterTakeoverMs
        ? Math.ceil(unheard)
        : undefined;
    const pending = this.ledger.takeAll();
    const reopened: string[] = [];
    const summaries: Output[] = [];
    for (const output of pending) {
      if (isTimeoutFault(output)) {
        const memberId = (output.envelope as EnvelopeOf<'MemberFaultEvent'>).data.memberId;
        if (this.detector.reopen(memberId, givenBack !== undefined)) reopened.push(memberId);
        continue;
      }
      // Faults at once; summaries (a whole tick of them at 100 000 members: hundreds of 64 KiB
      // messages, each encoded and written to the outbox) a slice per turn of the event loop: in one
      // turn they starved the new active's lease renewals until it fenced itself.
      if (output.kind === 'summary') summaries.push(output);
      else this.emit(output, epoch);
    }
    this.takeOverTick();
    this.republishSummaries(summaries);
    this.counters.faultsReopened += reopened.length;
    if (givenBack === undefined) this.detector.grace(graceAfterTakeoverMs);
    // Capped per member since its last stat (FaultDetector.shift): a flapping lease that reports the whole lease
    // as each gap can delay a silent member's fault by one grace period, never forever.
    else this.detector.shift(givenBack, graceAfterTakeoverMs);
    this.log.info('cep active', {
      event: 'cep.became_active',
      epoch,
      republished: pending.length - reopened.length,
      resumed: activation.resumed === true,
      unheardMs: unheard,
      graceMs: givenBack ?? graceAfterTakeoverMs,
      grace: givenBack === undefined ? 'whole' : 'given_back',
    });
    if (reopened.length > 0) {
      this.log.warn('timeout faults declared while passive reopened: each member gets its time back', {
        event: 'cep.faults_reopened',
        epoch,
        reopened: reopened.length,
        members: reopened.slice(0, 20),
      });
    }
  }

  deactivate(): void {
    if (this.closed || this.epoch === undefined) return;
    this.log.info('cep passive: outputs held until the active confirms them', {
      event: 'cep.became_passive',
      epoch: this.epoch,
    });
    this.epoch = undefined;
  }

  forget(memberId: string): void {
    if (this.closed) return;
    if (this.importing) {
      this.importing.skip.add(memberId);
      this.importing.stale.delete(memberId);
    }
    const known = this.detector.member(memberId);
    if (known) {
      if (known.lastStatAt !== null) this.forgotten.set(memberId, known.lastStatAt);
      if (this.forgotten.size > MAX_FORGOTTEN) this.forgotten.delete(this.forgotten.keys().next().value as string);
      this.ledger.forgetStream(faultStream(memberId));
    }
    this.detector.forget(memberId);
    this.windows.forgetMember(memberId);
    this.log.debug('member forgotten', { event: 'cep.member_forgotten', memberId, known: known !== undefined });
  }

  confirm(ids: readonly string[]): void {
    this.counters.confirmations += ids.length;
    this.ledger.confirm(ids);
    const tick = this.tick;
    if (!tick || tick.published || this.epoch !== undefined || !this.ledger.tickPublished(tick.job.windowTo)) return;
    this.leaveTickToActive(tick);
    // Waiting for exactly this: the upkeep, now.
    if (tick.waiting) this.continueTick(false);
  }

  /**
   * The tick in progress is published by the active: nothing of it to hold
   * or compute here, only the windows' upkeep; what it made already is not
   * kept (counted in outputsAlreadyPublished as it comes up).
   */
  private leaveTickToActive(tick: NonNullable<CepMonitor['tick']>): void {
    tick.published = true;
    tick.job.pruneOnly();
    this.leftTick = tick.job.windowTo;
    this.counters.summaryTicksLeftToActive += 1;
  }

  /**
   * The latest tick this passive left to the active (windowTo), until a newer
   * one starts: the active's first confirmation says it began publishing that
   * tick, not that it finished, so a takeover makes it again (`takeOverTick`).
   */
  private leftTick: number | undefined;

  /**
   * At a takeover: the tick this node waited for, or left to the old active,
   * is its own to publish now, whole (the ids are the same, subscribers drop
   * what the old active already sent), and before the older summaries it
   * holds, which that tick supersedes (marked published first, so they are
   * left out however long the tick takes). Pruning for the tick left only
   * dropped samples older than its window, so it comes out as it would have.
   */
  private takeOverTick(): void {
    const tick = this.tick;
    const left = this.leftTick;
    this.leftTick = undefined;
    if (left === undefined) {
      if (tick?.waiting) {
        this.ledger.markPublished({ kind: 'summary', stream: '', seq: tick.job.windowTo });
        this.continueTick(false);
      }
      return;
    }
    // Left to the old active (its windows' upkeep may still be under way): made again, whole.
    this.options.clock.clearTimeout(tick?.timer);
    this.tick = this.newTick(left, this.options.clock.now(), undefined);
    this.ledger.markPublished({ kind: 'summary', stream: '', seq: left });
    this.continueTick(false);
  }

  onOutput(listener: OutputListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  exportMember(memberId: string): Pick<CepState, 'version' | 'exportedAt' | 'members' | 'forgotten' | 'series'> {
    const member = this.detector.exportOne(memberId);
    const series = this.windows.exportOne(memberId);
    const forgottenAt = this.forgotten.get(memberId);
    return {
      version: CEP_STATE_VERSION,
      exportedAt: this.options.clock.now(),
      members: member ? [member] : [],
      forgotten: forgottenAt === undefined ? [] : [[memberId, forgottenAt]],
      series: series ? [series] : [],
    };
  }

  trackedMembers(): number {
    return this.detector.size;
  }

  exportState(): CepState {
    return {
      version: CEP_STATE_VERSION,
      exportedAt: this.options.clock.now(),
      members: this.detector.export(),
      forgotten: [...this.forgotten],
      series: this.windows.export(),
      ...this.ledger.export(),
    };
  }

  importState(value: unknown): void {
    if (this.closed) throw new ClosedError('cep engine');
    const state = parseCepState(value);
    this.detector.import(state.members);
    this.windows.import(state.series);
    this.ledger.import(state);
    this.forgotten.clear();
    for (const [memberId, lastStatAt] of state.forgotten) this.forgotten.set(memberId, lastStatAt);
    this.log.info('cep state imported', {
      event: 'cep.state_imported',
      members: state.members.length,
      pending: state.pending.length,
    });
    // Only a passive imports in the SP pair; an active one would otherwise sit on the imported pending outputs.
    if (this.epoch !== undefined) for (const output of this.ledger.takeAll()) this.emit(output, this.epoch);
  }

  exportStream(): CepExportStream {
    // Cluster by cluster in summary order first (the importer keeps that order), then members with no samples.
    // Made in the turn the link is welcomed: lookups, no set of every id (that took ~90 ms at 100 000 members).
    const members = this.windows.memberIds();
    for (const id of this.detector.ids()) if (!this.windows.has(id)) members.push(id);
    const published = this.ledger.publishedStreams();
    const ledger = this.ledger.exportHeld();
    const header: CepStreamHeader = {
      version: CEP_STREAM_VERSION,
      exportedAt: this.options.clock.now(),
      members: members.length,
      published: published.length,
      forgotten: [...this.forgotten],
      pending: ledger.pending,
      summariesPublishedThrough: ledger.summariesPublishedThrough,
    };
    let nextMember = 0;
    let nextPublished = 0;
    return {
      header,
      next: (maxMembers) => {
        if (nextMember >= members.length && nextPublished >= published.length) return undefined;
        const max = Math.min(MAX_CHUNK_ROWS, Math.max(1, maxMembers));
        const writer = new ChunkWriter();
        for (const end = Math.min(members.length, nextMember + max); nextMember < end; nextMember++) {
          const id = members[nextMember] as string;
          const member = this.detector.exportOne(id);
          const series = this.windows.exportOne(id);
          if (member) writer.member(member);
          if (series) writer.series(series);
          if (!member && !series) writer.chunk.g.push([id, this.forgotten.get(id) ?? null]);
        }
        for (const end = Math.min(published.length, nextPublished + max); nextPublished < end; nextPublished++) {
          // As it is now: a watermark the topology took away since the header is not sent.
          const stream = published[nextPublished] as string;
          const seq = this.ledger.publishedOf(stream);
          if (seq !== undefined) writer.chunk.p.push([stream, seq]);
        }
        return writer.chunk;
      },
    };
  }

  importBegin(value: unknown): void {
    if (this.closed) throw new ClosedError('cep engine');
    const header = parseStreamHeader(value);
    // Nothing is wiped: what this node holds stays until the import ends and says it is gone (`importEnd`),
    // so a takeover in the middle of it (the exporter died) still watches every member it knew.
    this.ledger.merge(header);
    for (const [memberId, lastStatAt] of header.forgotten) this.remember(memberId, lastStatAt);
    this.importing = {
      header,
      members: 0,
      published: 0,
      stale: new Set([...this.windows.memberIds(), ...this.detector.memberIds()]),
      skip: new Set(),
      rank: new Map(),
    };
  }

  importChunk(value: unknown): void {
    if (this.closed) throw new ClosedError('cep engine');
    const importing = this.importing;
    if (!importing) throw new CepStateError('(chunk)', 'a chunk before the header');
    const chunk = parseChunk(value, { maxSamples: 2 * this.options.maxSamplesPerSeries });
    const { header } = importing;
    if (importing.members + chunk.members.length > header.members)
      throw new CepStateError('m', `more members than the ${header.members} the header announced`);
    if (importing.published + chunk.published.length > header.published)
      throw new CepStateError('p', `more watermarks than the ${header.published} the header announced`);
    importing.members += chunk.members.length;
    importing.published += chunk.published.length;
    // A member the topology removed here since the header, or one whose rows are older than its removal,
    // stays removed: the exporter encoded it before it heard of the removal, and hears of it on its own.
    const removed = (memberId: string, lastStatAt: number | null) =>
      importing.skip.has(memberId) || (this.forgotten.get(memberId) ?? Number.NEGATIVE_INFINITY) >= (lastStatAt ?? 0);
    for (const member of chunk.members) {
      if (removed(member.memberId, member.lastStatAt)) continue;
      this.detector.importOne(member);
      importing.stale.delete(member.memberId);
    }
    for (const series of chunk.series) {
      if (importing.skip.has(series.memberId)) continue;
      if (!this.detector.member(series.memberId) && removed(series.memberId, null)) continue;
      this.windows.importOne(series);
      importing.rank.set(series.memberId, importing.rank.size);
      importing.stale.delete(series.memberId);
    }
    for (const [stream, seq] of chunk.published) {
      if (!importing.skip.has(stream.slice(FAULT_STREAM_PREFIX.length))) this.ledger.importPublished(stream, seq);
    }
    for (const [memberId, lastStatAt] of chunk.gone) {
      importing.stale.delete(memberId);
      this.detector.forget(memberId);
      this.windows.forgetMember(memberId);
      if (lastStatAt === null) continue;
      this.ledger.forgetStream(faultStream(memberId));
      this.remember(memberId, lastStatAt);
    }
  }

  importEnd(): void {
    const importing = this.importing;
    this.importing = undefined;
    if (!importing) return;
    // What the exporter did not have, and no batch since the header spoke of: gone.
    for (const memberId of importing.stale) {
      this.detector.forget(memberId);
      this.windows.forgetMember(memberId);
      this.ledger.forgetStream(faultStream(memberId));
    }
    this.windows.reorder(importing.rank);
    this.log.info('cep state imported', {
      event: 'cep.state_imported',
      members: importing.members,
      expected: importing.header.members,
      dropped: importing.stale.size,
      pending: this.ledger.size,
      streamed: true,
    });
  }

  /** Remembers a removed member's last stat time (the newer one), within the bound. */
  private remember(memberId: string, lastStatAt: number): void {
    if ((this.forgotten.get(memberId) ?? Number.NEGATIVE_INFINITY) >= lastStatAt) return;
    this.forgotten.set(memberId, lastStatAt);
    if (this.forgotten.size > MAX_FORGOTTEN) this.forgotten.delete(this.forgotten.keys().next().value as string);
  }

  /**
   * A streamed import in progress: its header, the rows taken so far, the
   * members this node held at its start that nothing has spoken of since
   * (`stale`: gone at the end), the members the topology removed here since
   * (`skip`), and the arrival order of members with samples (`rank`).
   */
  private importing:
    | {
        header: CepStreamHeader;
        members: number;
        published: number;
        stale: Set<string>;
        skip: Set<string>;
        rank: Map<string, number>;
      }
    | undefined;

  status(): CepStatus {
    return {
      engine: 'cep',
      role: this.role,
      epoch: this.epoch,
      members: this.detector.size,
      faulted: this.detector.faulted,
      clusters: this.windows.clusters,
      pendingOutputs: this.ledger.size,
      outputsDropped: this.ledger.dropped,
      faultsDropped: this.ledger.faultsDropped,
      outputsSuperseded: this.ledger.superseded,
      ...this.counters,
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.options.clock.clearTimeout(this.summaryTimer);
    this.summaryTimer = undefined;
    this.options.clock.clearTimeout(this.tick?.timer);
    this.tick = undefined;
    this.options.clock.clearTimeout(this.republishing?.timer);
    this.republishing = undefined;
    this.detector.close();
    this.listeners.clear();
  }

  private fault(member: Readonly<MemberIdentity>, info: FaultInfo): void {
    this.counters.faultsDeclared += 1;
    this.log.info('member fault', {
      event: 'cep.member_fault',
      memberId: member.memberId,
      clusterId: member.clusterId,
      reason: info.reason,
      silentForMs: info.silentForMs,
      lastStatAt: info.lastStatAt,
      role: this.role,
    });
    // The active's detections only: a passive's are held, and declared again by the node that takes over.
    if (this.epoch !== undefined)
      this.options.onFaultDeclared({
        memberId: member.memberId,
        reason: info.reason,
        silentForMs: info.silentForMs,
        overshootMs: info.lateByMs,
      });
    // info.declaredAt is clock.now(): kept by the detector, so a re-announcement carries the same time.
    const output = faultOutput(member, info, this.options.source, info.declaredAt);
    if (this.ledger.faultPublished(output)) this.counters.outputsAlreadyPublished += 1;
    else this.produce(output);
  }

  /** Summary ticks fall on multiples of summaryIntervalMs of the wall clock: both nodes tick alike. */
  private scheduleSummary(): void {
    if (this.closed) return;
    const { clock, summaryIntervalMs } = this.options;
    const now = clock.now();
    if (this.nextSummaryAt <= now) this.nextSummaryAt = (Math.floor(now / summaryIntervalMs) + 1) * summaryIntervalMs;
    this.summaryTimer = clock.setTimeout(() => this.summarize(), this.nextSummaryAt - now);
  }

  private summarize(): void {
    if (this.closed) return;
    const { clock, summaryIntervalMs } = this.options;
    const now = clock.now();
    // A timer that fires a little early keeps its own tick; one late by whole intervals (a pause) does the latest due.
    const windowTo = Math.max(this.nextSummaryAt, Math.floor(now / summaryIntervalMs) * summaryIntervalMs);
    this.nextSummaryAt = windowTo + summaryIntervalMs;
    try {
      // Only the active re-announces: a passive holds no repeats (its own faults wait in the ledger).
      if (this.epoch !== undefined) this.reannounceFaults(this.epoch);
      // A wall clock stepped back must not repeat a tick (and its ids).
      if (windowTo <= this.lastWindowTo) return;
      this.lastWindowTo = windowTo;
      // The last tick is not through yet (this process was starved): it ends now, before this one starts.
      if (this.tick) {
        // A passive's is superseded by this one (it holds only the newest summary per stream):
        // dropped, not finished in one block; this tick prunes the windows in its turn.
        if (this.epoch === undefined) this.dropTick();
        else this.continueTick(true);
      }
      this.leftTick = undefined;
      const { passiveTickWaitMs } = this.options;
      // A passive gives the active's confirmations of this tick time to arrive (continueTick).
      this.tick = this.newTick(
        windowTo,
        now,
        this.epoch === undefined ? clock.monotonicNow() + passiveTickWaitMs : undefined,
      );
      // The active's confirmations got here first: a tick is emitted whole, so one covers it.
      if (this.ledger.tickPublished(windowTo)) this.leaveTickToActive(this.tick);
      this.continueTick(false);
    } finally {
      this.scheduleSummary();
    }
  }

  /**
   * Runs the tick in progress for SUMMARY_SLICE_MS (or to its end, `all`),
   * producing each cluster's outputs as it is summarized, and goes on in the
   * next turn of the event loop: a tick of 100 000 members took the event
   * loop for 2.5 s, longer than the lease, and the node lost its lease at
   * every tick.
   */
  private continueTick(all: boolean): void {
    const tick = this.tick;
    if (!tick || this.closed) return;
    const { clock } = this.options;
    clock.clearTimeout(tick.timer);
    tick.timer = undefined;
    tick.waiting = false;
    // A passive waits for them before it computes a tick itself: the active computes the same tick at
    // the same instant, and two nodes summarizing 100 000 members at once took both cores.
    if (!all && !tick.published && this.epoch === undefined && tick.waitUntil !== undefined) {
      const waitMs = tick.waitUntil - clock.monotonicNow();
      if (waitMs > 0) {
        tick.waiting = true;
        tick.timer = clock.setTimeout(() => this.continueTick(false), waitMs);
        return;
      }
    }
    const started = clock.monotonicNow();
    const more = () => all || clock.monotonicNow() - started < SUMMARY_SLICE_MS;
    for (;;) {
      // Outputs one by one, each made as it is taken (each goes to the publisher: encoded, checked,
      // written), the slice checked after each.
      for (let output = this.nextOutput(tick); output !== undefined; output = this.nextOutput(tick)) {
        this.counters.summariesComputed += 1;
        if (tick.published) this.counters.outputsAlreadyPublished += 1;
        else this.produce(output);
        if (!more()) break;
      }
      // A slice may end on the tick's last output, which only asking for the next tells: asked
      // now, so a finished tick never lingers a turn (a passive would take a confirmation
      // arriving meanwhile for a tick it left to the active, and make it again at a takeover).
      if (tick.job.done && tick.groups.length === 0 && tick.ahead === undefined) tick.ahead = this.nextOutput(tick);
      if (tick.ahead === undefined && tick.outputs === undefined && tick.groups.length === 0 && tick.job.done) {
        this.tick = undefined;
        return;
      }
      if (!more()) break;
      for (const group of tick.job.run(more)) tick.groups.push(group);
    }
    tick.timer = clock.setTimeout(() => this.continueTick(false), 0);
  }

  /** The tick's next output: the current cluster's, or the first of the next cluster summarized. */
  private nextOutput(tick: NonNullable<CepMonitor['tick']>): Output | undefined {
    const ahead = tick.ahead;
    if (ahead !== undefined) {
      tick.ahead = undefined;
      return ahead;
    }
    for (;;) {
      const next = tick.outputs?.next();
      if (next !== undefined && !next.done) return next.value;
      const group = tick.groups.shift();
      tick.outputs =
        group &&
        groupOutputs(group, this.options.source, tick.time, {
          maxBytes: this.options.maxMessageBytes,
          onEntryTooLarge: (entry) => this.entryTooLarge(entry),
        });
      if (!tick.outputs) return undefined;
    }
  }

  /** A tick at `windowTo`, made at `time`, nothing of it made yet. */
  private newTick(windowTo: number, time: number, waitUntil: number | undefined): NonNullable<CepMonitor['tick']> {
    const job = this.windows.summaryJob(windowTo);
    return {
      job,
      time,
      published: false,
      groups: [],
      outputs: undefined,
      ahead: undefined,
      timer: undefined,
      waitUntil,
      waiting: false,
    };
  }

  /** Drops the tick in progress (a passive's, overtaken by the next). */
  private dropTick(): void {
    this.options.clock.clearTimeout(this.tick?.timer);
    this.tick = undefined;
  }

  /** Summaries a takeover found pending, published a slice per turn (`republishSummaries`). */
  private republishing: { outputs: Output[]; next: number; timer: TimerHandle | undefined } | undefined;

  /**
   * Publishes `outputs` for SUMMARY_SLICE_MS per turn of the event loop, each
   * through `produce`: held again if this node turns passive before its turn.
   * A second takeover meanwhile adds its own after the ones still waiting.
   */
  private republishSummaries(outputs: Output[]): void {
    if (outputs.length === 0) return;
    if (this.republishing) {
      this.republishing.outputs.push(...outputs);
      return;
    }
    this.republishing = { outputs, next: 0, timer: undefined };
    this.continueRepublish();
  }

  private continueRepublish(): void {
    const job = this.republishing;
    if (!job || this.closed) return;
    const { clock } = this.options;
    job.timer = undefined;
    const started = clock.monotonicNow();
    while (job.next < job.outputs.length) {
      const output = job.outputs[job.next++] as Output;
      // A tick of this node's own went out meanwhile: its figures are newer.
      if (this.epoch !== undefined && this.ledger.olderThanPublishedTick(output.seq)) {
        this.counters.outputsAlreadyPublished += 1;
        continue;
      }
      this.produce(output);
      if (clock.monotonicNow() - started >= SUMMARY_SLICE_MS) break;
    }
    if (job.next >= job.outputs.length) {
      this.republishing = undefined;
      return;
    }
    job.timer = clock.setTimeout(() => this.continueRepublish(), 0);
  }

  /** The summary tick in progress, if it did not fit one slice. */
  private tick:
    | {
        job: SummaryJob;
        time: number;
        published: boolean;
        /** Clusters summarized whose outputs are not made yet, oldest first. */
        groups: GroupSummary[];
        /** The outputs of the cluster being published, made one by one. */
        outputs: Iterator<Output, void, undefined> | undefined;
        /** An output made at the end of a slice (to learn whether the tick was through), first in the next. */
        ahead: Output | undefined;
        timer: TimerHandle | undefined;
        /** A passive's: until when (monotonic ms) it waits for the active's confirmations of this tick. */
        waitUntil: number | undefined;
        /** Waiting for them now: a confirmation or an activation goes on at once. */
        waiting: boolean;
      }
    | undefined;

  /**
   * Each faulted, not forgotten member's MemberFault again, with the id and
   * content of its first emission (subscribers dedupe by id), so a fault lost
   * between the engine and the autoscaler is delivered at a later tick. At
   * most maxFaultReannouncesPerTick a tick, rotating; O(that) a tick.
   */
  private reannounceFaults(epoch: number): void {
    const { source, maxFaultReannouncesPerTick } = this.options;
    const count = this.detector.reannounce(maxFaultReannouncesPerTick, (member, info) => {
      const output = faultOutput(member, info, source, info.declaredAt);
      this.counters.faultsReannounced += 1;
      this.deliver({ ...output.envelope, epoch } as Envelope);
    });
    if (count > 0) {
      this.log.debug('faulted members re-announced', {
        event: 'cep.faults_reannounced',
        count,
        faulted: this.detector.faulted,
        epoch,
      });
    }
  }

  private produce(output: Output): void {
    if (this.epoch !== undefined) this.emit(output, this.epoch);
    else if (this.ledger.hold(output) > 0) this.warnDropped();
  }

  private emit(output: Output, epoch: number): void {
    this.ledger.markPublished(output);
    const envelope = { ...output.envelope, epoch } as Envelope;
    if (output.kind === 'fault') this.counters.faultsEmitted += 1;
    else this.counters.summariesEmitted += 1;
    this.deliver(envelope);
  }

  private deliver(envelope: Envelope): void {
    for (const listener of this.listeners) {
      try {
        listener(envelope);
      } catch (error) {
        this.counters.listenerErrors += 1;
        this.log.error('output listener failed', {
          event: 'cep.output_listener_failed',
          id: envelope.id,
          type: envelope.type,
          error,
        });
      }
    }
  }

  /** Never with ids of at most 128 characters and a sane limit: counted, and logged at most once a minute. */
  private entryTooLarge(entry: OversizedSummaryEntry): void {
    this.counters.summaryEntriesTooLarge += 1;
    const now = this.options.clock.monotonicNow();
    if (this.lastTooLargeWarning !== undefined && now - this.lastTooLargeWarning < DROP_WARNING_EVERY_MS) return;
    this.lastTooLargeWarning = now;
    this.log.warn('member summary entry fits no envelope within maxMessageBytes: left out of the tick', {
      event: 'cep.summary_entry_too_large',
      type: entry.type,
      clusterId: entry.clusterId,
      networkPartitionId: entry.networkPartitionId,
      memberId: entry.memberId,
      bytes: entry.bytes,
      maxMessageBytes: entry.maxBytes,
      summaryEntriesTooLarge: this.counters.summaryEntriesTooLarge,
    });
  }

  private warnDropped(): void {
    const now = this.options.clock.monotonicNow();
    if (this.lastDropWarning !== undefined && now - this.lastDropWarning < DROP_WARNING_EVERY_MS) return;
    this.lastDropWarning = now;
    this.log.warn('pending faults over the bound: oldest dropped, a takeover would not publish them', {
      event: 'cep.pending_dropped',
      maxPendingOutputs: this.options.maxPendingOutputs,
      faultsDropped: this.ledger.faultsDropped,
    });
  }
}

/** The CEP monitor's engine: member fault detection and summarized stats (issue 5). */
export function createCepEngine(options: CepEngineOptions = {}): CepEngine {
  return new CepMonitor(options);
}
