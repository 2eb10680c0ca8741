/**
 * A member's workload, as the local driver starts it (detached, so it leads
 * the member's process group):
 *   node packages/cloud-controller/dist/workload-main.js
 * Everything comes from the member environment (README "Members"): it listens
 * on a free port of FAULTLINE_WORKLOAD_HOST, starts the cartridge agent
 * (FAULTLINE_AGENT_MAIN) with FAULTLINE_WORKLOAD_PORT, and writes
 * `{ pid, port, agentPid, agentRestarts }` to FAULTLINE_WORKLOAD_READY_FILE. On
 * SIGUSR2 it starts a new agent if its agent is gone, and writes the file again;
 * on SIGHUP it drains (refuses new requests, finishes those in flight).
 */
import { createLogger, runMain } from '@faultline/core';
import type { WorkloadEnv } from '@faultline/protocol';
import { AGENT_RESTART_SIGNAL, DRAIN_SIGNAL } from './launcher.js';
import { readWorkloadEnv, startWorkloadService, type WorkloadService } from './workload-service.js';

// Assigned by the first step of runMain, which always runs before the second.
let config!: WorkloadEnv;
let service: WorkloadService | undefined;

// The driver's request for a new agent (README "Autoscaler → Second witness"), handled from the first
// line: the signal's default action would end the workload. Before the service runs there is no agent to replace.
process.on(AGENT_RESTART_SIGNAL, () => void service?.restartAgent());
// The driver's drain request (README "Autoscaler → Graceful drain"), from the first line too: the default
// action would end the workload. Before the service runs nothing is in flight; the stop follows.
process.on(DRAIN_SIGNAL, () => service?.drain());

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
  async ({ logger }) => {
    service = await startWorkloadService(config, logger, process.env);
    return service;
  },
);
