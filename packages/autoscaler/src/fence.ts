import type {
  AdoptResult,
  AgentRestartResult,
  Iaas,
  MemberInstance,
  MemberSpec,
  TerminateOptions,
  TerminateResult,
} from '@faultline/cloud-controller';
import { FaultlineError } from '@faultline/core';

/**
 * Who may act (README "The autoscaler pair"): the pair's lease as this node
 * holds it. `LeaderLease` of `@faultline/coordination` is one.
 */
export interface Fence {
  /** Synchronous: the lease is held and not past its self-fencing deadline. */
  isValid(): boolean;
  /** The epoch of the lease held, else undefined. */
  readonly epoch: number | undefined;
}

/** An autoscaler node without its lease tried to act or write: refused. */
export class FencedError extends FaultlineError {
  constructor(what: string, context: Record<string, unknown> = {}) {
    super('FL_ERR_FENCED', `${what} refused: this autoscaler node does not hold the lease`, {
      context: { what, ...context },
    });
  }
}

/**
 * The Iaas with every action fenced: spawn, terminate, adopt and restartAgent are refused
 * (FencedError, counted by `onRefused`) unless the fence is valid at the very
 * moment the call is made, so a node that was deposed, or paused past its
 * lease, acts on nothing after it wakes. Reads (isRunning, list, discover,
 * probe) go through: they change nothing.
 */
export function fencedIaas(iaas: Iaas, fence: Fence, onRefused: (what: string) => void = () => {}): Iaas {
  const check = (what: string, context: Record<string, unknown>): void => {
    if (fence.isValid()) return;
    onRefused(what);
    throw new FencedError(what, context);
  };
  return {
    name: iaas.name,
    spawn: async (spec: MemberSpec): Promise<MemberInstance> => {
      check('spawn', { memberId: spec.memberId });
      return iaas.spawn(spec);
    },
    terminate: async (memberId: string, options?: TerminateOptions): Promise<TerminateResult> => {
      check('terminate', { memberId });
      return iaas.terminate(memberId, options);
    },
    adopt: async (instances: readonly unknown[]): Promise<AdoptResult> => {
      check('adopt', { count: instances.length });
      return iaas.adopt(instances);
    },
    restartAgent: async (memberId: string): Promise<AgentRestartResult> => {
      check('restartAgent', { memberId });
      return iaas.restartAgent(memberId);
    },
    isRunning: (memberId) => iaas.isRunning(memberId),
    list: () => iaas.list(),
    discover: () => iaas.discover(),
    probe: (memberId) => iaas.probe(memberId),
    // The node closes the driver itself: an autoscaler of one lease term must not close it for the next.
    close: async () => {},
  };
}
