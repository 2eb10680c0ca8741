/**
 * A member's workload, as the local driver starts it (detached, so it leads
 * the member's process group):
 *   node packages/cloud-controller/dist/workload-main.js
 * Everything comes from the member environment (README "Members"): it listens
 * on a free port of FAULTLINE_WORKLOAD_HOST, starts the cartridge agent
 * (FAULTLINE_AGENT_MAIN) with FAULTLINE_WORKLOAD_PORT, and writes
 * `{ pid, port, agentPid }` to FAULTLINE_WORKLOAD_READY_FILE.
 */
import { createLogger, runMain } from '@faultline/core';
import type { WorkloadEnv } from '@faultline/protocol';
import { readWorkloadEnv, startWorkloadService } from './workload-service.js';

// Assigned by the first step of runMain, which always runs before the second.
let config!: WorkloadEnv;

await runMain(
  // The environment is read before the logger exists because the logger's
  // name and folder come from it; runMain turns a ConfigError into exit 2.
  () => {
    config = readWorkloadEnv(process.env);
    return createLogger({
      service: `workload-${config.memberId}`,
      level: config.logLevel,
      dir: config.logDir,
      // With a log folder the JSON file is the log; stdout (the member's .out file) keeps crash traces only.
      console: config.logDir ? 'none' : 'json',
    });
  },
  ({ logger }) => startWorkloadService(config, logger, process.env),
);
