/**
 * Every default of Faultline, in one place, so the YAML schema and each
 * package's `options.ts` (resolved with `withDefaults`) agree by construction.
 * Never edit one to make a test fast: tests pass short values through
 * options or config.
 */
export const DEFAULTS = {
  /** A service's JSON-lines log is rotated past this size (README "Operations → Logs")… */
  logMaxFileBytes: 50 * 1024 * 1024,
  /** …and this many files are kept, the current one included. */
  logMaxFiles: 5,
  /** Between two looks of the supervisor at the raw outputs of the logs folder (members', PostgreSQL's, …). */
  logOutputCheckIntervalMs: 60_000,
  /** Subscriber ping to topic `ping` (the seed). */
  pingIntervalMs: 1_000,
  /** Subscriber reconnect + resubscribe while the broker is down (the seed). */
  resubscribeIntervalMs: 30_000,
  /** Publisher republish of its outbox while the broker is down (the seed). */
  republishIntervalMs: 60_000,
  /** Largest MQTT payload a subscriber reads; larger ones are dropped and counted. */
  maxMessageBytes: 64 * 1024,
  /**
   * A publisher's outbox holds summaries up to this many bytes (the oldest are
   * dropped past it), MemberFaults and actions up to twice it. An hour without
   * a broker at 10 000 members holds ~4 MiB: summaries are coalesced per stream.
   */
  outboxMaxBytes: 64 * 1024 * 1024,
  /** Cartridge agent health-stat interval (Stratos agent). */
  statIntervalMs: 15_000,
  /** Bound of the agent's resend buffer; beyond it the oldest batch is dropped and counted. */
  maxUnackedBatches: 1_000,
  /** Each cartridge agent's health routes and `/metrics`: on loopback… */
  agentMetricsHost: '127.0.0.1',
  /** …on a port the OS picks (0): hundreds of agents on one host never collide. */
  agentMetricsPort: 0,
  /** No stats from a member for this long means MemberFault (Stratos CEP). */
  faultTimeoutMs: 60_000,
  /** Summarized-stat window (Stratos CEP, 1 min). */
  windowMs: 60_000,
  /** SP heartbeat interval and retries (WSO2 SP's shipped deployment.yaml). */
  heartbeatIntervalMs: 1_000,
  heartbeatMaxRetry: 2,
  /** Self-fencing steps down this long before the lease can be taken by the peer. */
  fencingMarginMs: 300,
  /** Largest Thrift frame the SP source accepts. */
  maxFrameBytes: 1024 * 1024,
  /** The least memory one Thrift server keeps for frames not complete yet, all connections together. */
  maxHeldFrameBytes: 64 * 1024 * 1024,
  /** A peer's bad input is logged at most once per peer and reason this often (the next record counts the rest). */
  badInputLogIntervalMs: 10_000,
  /** The SP refuses a stat stamped further than this from its clock, either way. */
  statTimestampWindowMs: 600_000,
  /** Open connections the SP's Thrift port takes, in total and from one remote address. */
  thriftMaxConnections: 10_000,
  thriftMaxConnectionsPerPeer: 1_000,
  /** The SP closes a Thrift connection that sent nothing for this long (well above the stat interval). */
  thriftIdleTimeoutMs: 120_000,
  /** Stratos autoscaler: a member must activate within this. */
  pendingTimeoutMs: 900_000,
  /** Autoscaler cluster-monitor interval (Stratos used 90 s). */
  monitorIntervalMs: 15_000,
  /** Replacement backoff per cluster: 10 s doubling to 5 min. */
  backoffInitialMs: 10_000,
  backoffMaxMs: 300_000,
  /** The replacement backoff starts again after this long without a failed replacement (Kubernetes' 10 min). */
  backoffResetMs: 600_000,
  /** A fault-storm hold ends after this long at the latest; held members are verified through the Iaas meanwhile. */
  stormMaxHoldMs: 600_000,
  /** An instance no registry member owns is terminated once it has been found this long. */
  orphanGraceMs: 60_000,
  /**
   * A cluster's second witness before a kill (`clusters[].secondWitness`, README
   * "Autoscaler → Second witness"): off unless turned on; on, a member's agent is
   * restarted at most maxRestarts times within withinMs before a fault terminates it.
   */
  secondWitness: { enabled: false, maxRestarts: 3, withinMs: 600_000 },
  /** How long the local driver waits for the new agent a member's workload starts on its request. */
  agentRestartTimeoutMs: 10_000,
  /**
   * A cluster's graceful drain (`clusters[].drainTimeoutMs`, README "Autoscaler → Graceful drain"): a
   * member that still serves is terminated once its workload is idle, or after this long; 0: no drain.
   */
  drainTimeoutMs: 30_000,
  /**
   * How long a draining member still takes new requests after it was marked draining, before its
   * workload is asked to refuse them (`clusters[].drainDelayMs`; Nomad's shutdown_delay): the time
   * load balancers have to read the mark and stop sending it requests.
   */
  drainDelayMs: 2_000,
  /** Consecutive scale-down requests before the scaling rule removes a member (Stratos). */
  scaleDownConsecutive: 3,
  /**
   * Scale stabilization of a cluster (`clusters[].scaling`): off, Stratos' own
   * behaviour (one member per decision, no window, no cooldown), which the
   * scaling rule's tests pin down. README "Autoscaler" gives production values.
   */
  scaling: { scaleDownWindowMs: 0, cooldownMs: 0, maxStep: 1 },
  /** The scaling thresholds of a cluster: requests in flight, memory %, load average %. */
  thresholds: { requestsInFlight: 80, memoryConsumption: 80, loadAverage: 80 },
  /** Latency of the demo workload's requests. */
  workloadLatencyMs: 20,
  /**
   * A member's probes (`clusters[].probes`, README "Probes"), run by its agent.
   * The period is the agent's stat interval (liveness, readiness) or activation
   * poll (startup), so it is not here.
   */
  probes: {
    /** A check not passed within this failed: the agent's probe deadline before probes were configurable. */
    timeoutMs: 2_000,
    /** Failures in a row after which liveness reports the workload down, or readiness takes the member out of service… */
    failureThreshold: 3,
    /** …and passes in a row after which a failing probe passes again (and the startup probe passes). */
    successThreshold: 1,
    /** An http probe's status that passes. */
    expectStatus: 200,
    /** The http probes' paths: liveness and readiness read the stats route, startup the health route (activation). */
    livenessPath: '/stats',
    readinessPath: '/stats',
    startupPath: '/healthz',
    /** What an exec probe's output (stdout and stderr) is kept of, for the log; the rest is read and dropped. */
    execMaxOutputBytes: 4_096,
  },
  /** The port of a `brokers.nodes[].url` that names none, by its scheme (IANA's MQTT ports). */
  brokerUrlPorts: { mqtt: 1883, mqtts: 8883 },
  /** The unprivileged user the local driver runs members as when it runs as root (created if missing). */
  memberUser: 'faultline-member',
  /** The stack's web console (docs/operations.md, "The console"). */
  console: {
    /** The web console's port (`console.port`); 0 lets the system pick one. */
    port: 7930,
    /** The live timeline reads new autoscaler actions this often. */
    pollIntervalMs: 1_000,
  },
  /** The stack supervisor (README "The stack: run it, break it, watch it"). */
  supervisor: {
    /** A dead platform service is started again after this, doubling with each death… */
    restartInitialMs: 1_000,
    /** …up to this… */
    restartMaxMs: 30_000,
    /** …and back to the first delay once the service has been up this long. */
    restartResetMs: 30_000,
    /** A ready service's health endpoint is probed this long after its last probe ended… */
    livenessIntervalMs: 5_000,
    /** …a probe not answered within this failed… */
    livenessTimeoutMs: 2_000,
    /** …and after this many failures in a row the service is killed (SIGKILL) and restarted. */
    livenessFailureThreshold: 3,
    /**
     * A started service has this long to be ready, counted from its last sign of progress: a
     * PostgreSQL in crash recovery (it answers "starting up") is given as long as it recovers.
     */
    readyTimeoutMs: 30_000,
  },
} as const;
