import { FaultlineError } from '@faultline/core';

/** A call the agent made (a Thrift publish, a workload probe) got no answer within its deadline. */
export class CallTimeoutError extends FaultlineError {
  constructor(what: string, ms: number) {
    super('FL_ERR_CALL_TIMEOUT', `${what}: no answer within ${ms} ms`, { context: { what, ms } });
  }
}
