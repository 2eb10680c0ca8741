import { z } from 'zod';
import { DEFAULTS } from './defaults.js';
import { ID_PATTERN, ID_PATTERN_DESCRIPTION } from './ids.js';
import { LOG_LEVELS } from './logger.js';

// Strict objects: a misspelt key is an error that names it, not a silent default.
// `prefault({})` runs an absent section through its schema so its defaults apply.
const ms = (fallback: number) => z.number().int().positive().default(fallback);
const port = z.number().int().min(0).max(65_535);
const id = z.string().regex(ID_PATTERN, ID_PATTERN_DESCRIPTION);

/**
 * A broker role's account. No built-in password: give `password` or
 * `passwordFile` (a file of mode 0600, read by `brokerPassword`), or neither
 * and let `faultline stack up` generate a file for the role (README "Secret
 * files"). The username defaults to the role's name.
 */
const credentialOf = (role: string) =>
  z
    .strictObject({
      username: z.string().min(1).default(role),
      password: z.string().min(1).optional(),
      passwordFile: z.string().min(1).optional(),
    })
    .refine((c) => c.password === undefined || c.passwordFile === undefined, {
      message: 'give password or passwordFile, not both',
    })
    .prefault({});

/**
 * The roles of `brokers.credentials`, the keys whose `passwordFile` an env
 * variable may set. There is no shared `agent` account: each member's agent
 * logs in as its own member (user name its member id, password its member
 * credential), and may publish only under that member id.
 */
export const BROKER_CREDENTIAL_ROLES = ['sp', 'autoscaler', 'observer'] as const;
export type BrokerCredentialRole = (typeof BROKER_CREDENTIAL_ROLES)[number];

/** The schemes of `brokers.nodes[].url`: `mqtts` exactly when `tls.mqtt` is set (README "External brokers"). */
export type BrokerUrlScheme = keyof typeof DEFAULTS.brokerUrlPorts;

/** What a `brokers.nodes[].url` names: its scheme, its host (an IPv6 address without brackets) and port. */
export interface BrokerUrl {
  scheme: BrokerUrlScheme;
  host: string;
  port: number;
}

/** A host name or an IP address, as the members' agents take it (FAULTLINE_BROKERS). */
const BROKER_URL_HOST = /^(?:[A-Za-z0-9.-]{1,253}|[0-9A-Fa-f:.]{2,45})$/;

/**
 * `mqtt://host[:port]` or `mqtts://host[:port]` (the port by default 1883 or
 * 8883) as its parts; otherwise a sentence saying what is wrong with it. No
 * user or password (the accounts are `brokers.credentials`), no path, query
 * or fragment.
 */
export function parseBrokerUrl(text: string): BrokerUrl | string {
  const shape = 'write mqtt://host:port (mqtts://host:port when tls.mqtt is set)';
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `not a URL: ${shape}`;
  }
  const scheme = url.protocol.slice(0, -1);
  if (scheme !== 'mqtt' && scheme !== 'mqtts') return `unknown scheme ${url.protocol}: ${shape}`;
  if (url.username !== '' || url.password !== '') {
    return 'no user or password in the URL: the accounts are brokers.credentials';
  }
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') {
    return `no path, query or fragment: ${shape}`;
  }
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (!BROKER_URL_HOST.test(host)) return `no host name or IP address: ${shape}`;
  const port = url.port === '' ? DEFAULTS.brokerUrlPorts[scheme] : Number(url.port);
  if (port === 0) return 'port 0: a broker the services dial needs its port';
  return { scheme, host, port };
}

/**
 * A broker node: `name`, and where it listens (the stack's own nodes) or is
 * dialled (external ones) as `host` and `port`, or as `url` (either, not
 * both); a url sets host and port, and is kept to check its scheme against
 * `tls.mqtt`.
 */
export const brokerNodeSchema = z
  .strictObject({
    name: id,
    /** `mqtt://host:port`, or `mqtts://host:port` when `tls.mqtt` is set: host and port in one. */
    url: z.string().min(1).optional(),
    /** Without url: the node's host. @default 127.0.0.1 (set by the transform below: a url's host must not be overridden) */
    host: z.string().optional().meta({ default: '127.0.0.1' }),
    /** Without url: the node's port (required then). */
    port: port.optional(),
    /** Faultline's own (aedes) nodes: the health routes and `/metrics` on healthHost:healthPort (README "Operations"). */
    healthPort: port.optional(),
    healthHost: z.string().min(1).default('127.0.0.1'),
  })
  .superRefine((node, ctx) => {
    if (node.url === undefined) {
      if (node.port === undefined)
        ctx.addIssue({ code: 'custom', path: ['port'], message: 'give port (and host), or url' });
      return;
    }
    if (node.host !== undefined || node.port !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'give url, or host and port, not both' });
    }
    const parsed = parseBrokerUrl(node.url);
    if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', path: ['url'], message: parsed });
  })
  .transform(({ url, host, port, ...rest }): typeof rest & { url?: string; host: string; port: number } => {
    const parsed = url === undefined ? undefined : parseBrokerUrl(url);
    // A bad url never gets here (the refinement above): parsed is its parts, or there is no url.
    if (url !== undefined && typeof parsed === 'object') return { ...rest, url, host: parsed.host, port: parsed.port };
    return { ...rest, host: host ?? '127.0.0.1', port: port ?? 0 };
  });

const brokersSchema = z
  .strictObject({
    /**
     * `aedes` (Faultline's own broker nodes), `mosquitto` (started from the
     * system's binary) or `external` (brokers run by someone else: the stack
     * starts none and its services connect to `nodes`; README "External brokers").
     */
    kind: z.enum(['aedes', 'mosquitto', 'external']).default('aedes'),
    // prefault: a default runs through the nodes' transform, and the JSON Schema keeps it for editors.
    nodes: z
      .array(brokerNodeSchema)
      .min(1)
      .prefault([
        { name: 'a', host: '127.0.0.1', port: 1883, healthHost: '127.0.0.1' },
        { name: 'b', host: '127.0.0.1', port: 1884, healthHost: '127.0.0.1' },
      ]),
    // One account per platform role; a file may set any of them, or none. Members have their own (see above).
    // With kind external every role needs a password: the stack cannot generate one for brokers it does not run.
    credentials: z
      .strictObject({
        sp: credentialOf('sp'),
        autoscaler: credentialOf('autoscaler'),
        // Read-only: status views and operators' tools (mosquitto_sub).
        observer: credentialOf('observer'),
      })
      .prefault({}),
  })
  .refine((b) => b.kind === 'aedes' || b.nodes.every((n) => n.healthPort === undefined), {
    message:
      "healthPort is served by Faultline's own broker nodes (kind aedes); Mosquitto and external brokers have none",
    path: ['nodes'],
  });

const messagingSchema = z.strictObject({
  pingIntervalMs: ms(DEFAULTS.pingIntervalMs),
  resubscribeIntervalMs: ms(DEFAULTS.resubscribeIntervalMs),
  republishIntervalMs: ms(DEFAULTS.republishIntervalMs),
  maxMessageBytes: ms(DEFAULTS.maxMessageBytes),
  /** Folder of the publishers' durable outboxes, one file per service. */
  outboxDir: z.string().default('.faultline/outbox'),
  /** A publisher's outbox bound (README "Bounded outbox"): summaries up to it, MemberFaults and actions up to twice it. */
  outboxMaxBytes: ms(DEFAULTS.outboxMaxBytes),
});

const spNodeSchema = z.strictObject({
  id,
  host: z.string().default('127.0.0.1'),
  thriftPort: port,
  syncPort: port,
  /** HTTP status of the node: `/status`, the health routes, `/metrics` (README "Operations"). */
  statusPort: port,
  /** The address the status port binds: loopback unless a probe or Prometheus elsewhere must reach it. */
  statusHost: z.string().min(1).default('127.0.0.1'),
});

const streamProcessorSchema = z
  .strictObject({
    groupId: id.default('sp'),
    heartbeatIntervalMs: ms(DEFAULTS.heartbeatIntervalMs),
    heartbeatMaxRetry: z.number().int().min(1).default(DEFAULTS.heartbeatMaxRetry),
    fencingMarginMs: z.number().int().min(0).default(DEFAULTS.fencingMarginMs),
    maxFrameBytes: ms(DEFAULTS.maxFrameBytes),
    /** A stat stamped further than this from the SP's clock, either way, is refused (README "Agents → SP (Thrift)"). */
    statTimestampWindowMs: ms(DEFAULTS.statTimestampWindowMs),
    /** Open Thrift connections at most, in total and from one remote address; more are closed at once. */
    thriftMaxConnections: ms(DEFAULTS.thriftMaxConnections),
    thriftMaxConnectionsPerPeer: ms(DEFAULTS.thriftMaxConnectionsPerPeer),
    /** A Thrift connection that sends nothing for this long is closed; keep it above agent.statIntervalMs. */
    thriftIdleTimeoutMs: ms(DEFAULTS.thriftIdleTimeoutMs),
    /** `cep`: the CEP monitor (MemberFault, summaries). `ledger`: counts stats only (tests, benchmarks). */
    engine: z.enum(['cep', 'ledger']).default('cep'),
    nodes: z
      .array(spNodeSchema)
      .min(1)
      .max(2)
      .default([
        { id: 'sp-1', host: '127.0.0.1', thriftPort: 7611, syncPort: 7711, statusPort: 7811, statusHost: '127.0.0.1' },
        { id: 'sp-2', host: '127.0.0.1', thriftPort: 7612, syncPort: 7712, statusPort: 7812, statusHost: '127.0.0.1' },
      ]),
  })
  .refine((sp) => sp.fencingMarginMs < sp.heartbeatIntervalMs * sp.heartbeatMaxRetry, {
    message: 'must be shorter than heartbeatIntervalMs × heartbeatMaxRetry',
    path: ['fencingMarginMs'],
  });

const cepSchema = z
  .strictObject({
    faultTimeoutMs: ms(DEFAULTS.faultTimeoutMs),
    windowMs: ms(DEFAULTS.windowMs),
    /**
     * How often summarized stats are computed and published; at most half of faultTimeoutMs.
     * @default 15 000, or a quarter of faultTimeoutMs when that is shorter
     */
    summaryIntervalMs: z.number().int().positive().optional(),
    /**
     * Grace after a takeover whose gap the SP node cannot tell, before any new fault; the most given
     * back when it can. @default faultTimeoutMs
     */
    graceAfterTakeoverMs: z.number().int().min(0).optional(),
    /**
     * How long the passive waits for the active's confirmation of a summary tick before it makes the
     * tick itself; at most half of summaryIntervalMs. @default a third of summaryIntervalMs
     */
    passiveTickWaitMs: z.number().int().min(0).optional(),
  })
  // The autoscaler takes a network partition no member summary listed for faultTimeoutMs as a silent
  // fault detector (fault-driven actions held): summaries any sparser read as a detector that keeps falling silent.
  .transform((cep) => ({
    ...cep,
    summaryIntervalMs:
      cep.summaryIntervalMs ?? Math.max(1, Math.min(DEFAULTS.statIntervalMs, Math.floor(cep.faultTimeoutMs / 4))),
  }))
  .refine((cep) => cep.summaryIntervalMs <= cep.faultTimeoutMs / 2, {
    message:
      'must be at most half of faultTimeoutMs: the autoscaler takes a partition no summary listed for faultTimeoutMs as a silent fault detector',
    path: ['summaryIntervalMs'],
  })
  .refine((cep) => cep.passiveTickWaitMs === undefined || cep.passiveTickWaitMs <= cep.summaryIntervalMs / 2, {
    message: 'must be at most half of summaryIntervalMs',
    path: ['passiveTickWaitMs'],
  });

const agentSchema = z.strictObject({
  statIntervalMs: ms(DEFAULTS.statIntervalMs),
  maxUnackedBatches: z.number().int().positive().default(DEFAULTS.maxUnackedBatches),
  /** Each agent serves `/health` and `/metrics` on metricsHost:metricsPort (README "Operations"); false: none. */
  metrics: z.boolean().default(true),
  metricsHost: z.string().min(1).default(DEFAULTS.agentMetricsHost),
  /** 0: a free port the OS picks, so the agents of one host never collide (they name it in a file_sd file). */
  metricsPort: port.default(DEFAULTS.agentMetricsPort),
});

const autoscalerSchema = z.strictObject({
  monitorIntervalMs: ms(DEFAULTS.monitorIntervalMs),
  pendingTimeoutMs: ms(DEFAULTS.pendingTimeoutMs),
  backoffInitialMs: ms(DEFAULTS.backoffInitialMs),
  backoffMaxMs: ms(DEFAULTS.backoffMaxMs),
  backoffResetMs: ms(DEFAULTS.backoffResetMs),
  stormMaxHoldMs: ms(DEFAULTS.stormMaxHoldMs),
  orphanGraceMs: ms(DEFAULTS.orphanGraceMs),
  scaleDownConsecutive: z.number().int().positive().default(DEFAULTS.scaleDownConsecutive),
  /** The autoscaler pair's lease group (README "The autoscaler pair"); not the SP's groupId. */
  groupId: id.default('autoscaler'),
  heartbeatIntervalMs: ms(DEFAULTS.heartbeatIntervalMs),
  heartbeatMaxRetry: z.number().int().min(1).default(DEFAULTS.heartbeatMaxRetry),
  fencingMarginMs: z.number().int().min(0).default(DEFAULTS.fencingMarginMs),
  /**
   * The autoscaler nodes: one acts (the lease holder), the other stands by.
   * Each serves `GET /health`, `/readiness`, `/active` and `/metrics` on
   * `healthHost`:`healthPort` (README "Operations").
   */
  nodes: z
    .array(z.strictObject({ id, healthPort: port, healthHost: z.string().min(1).default('127.0.0.1') }))
    .min(1)
    .max(2)
    .default([
      { id: 'autoscaler-a', healthPort: 7911, healthHost: '127.0.0.1' },
      { id: 'autoscaler-b', healthPort: 7912, healthHost: '127.0.0.1' },
    ]),
});

/** The stack supervisor's restarts and liveness checks of the platform services (`faultline stack up`). */
const supervisorSchema = z
  .strictObject({
    restartInitialMs: ms(DEFAULTS.supervisor.restartInitialMs),
    restartMaxMs: ms(DEFAULTS.supervisor.restartMaxMs),
    restartResetMs: ms(DEFAULTS.supervisor.restartResetMs),
    livenessIntervalMs: ms(DEFAULTS.supervisor.livenessIntervalMs),
    livenessTimeoutMs: ms(DEFAULTS.supervisor.livenessTimeoutMs),
    livenessFailureThreshold: z.number().int().positive().default(DEFAULTS.supervisor.livenessFailureThreshold),
    readyTimeoutMs: ms(DEFAULTS.supervisor.readyTimeoutMs),
  })
  .refine((s) => s.restartInitialMs <= s.restartMaxMs, {
    message: 'must not exceed restartMaxMs',
    path: ['restartInitialMs'],
  });

/**
 * The stack's web console (docs/operations.md, "The console"): served by the
 * supervisor of `faultline stack up`, read-only, on loopback unless told
 * otherwise. `faultline console` prints its URL.
 */
const consoleSchema = z.strictObject({
  enabled: z.boolean().default(true),
  host: z.string().min(1).default('127.0.0.1'),
  port: port.default(DEFAULTS.console.port),
  /** How often the live timeline reads the autoscaler's new actions from the registry. */
  pollIntervalMs: ms(DEFAULTS.console.pollIntervalMs),
});

/** A user name as useradd takes it: what the local driver may run members as. */
export const USER_NAME_PATTERN = /^[a-z_][a-z0-9_-]{0,31}$/;

/**
 * The cloud controller's local driver (README "What members can reach"): run
 * as root, it starts every member as `memberUser`, an unprivileged user it
 * creates when missing; otherwise members run as the platform's own user.
 */
const cloudControllerSchema = z.strictObject({
  local: z
    .strictObject({
      memberUser: z
        .string()
        .regex(USER_NAME_PATTERN, 'must be a user name (a-z, 0-9, _ and -, at most 32, not starting with a digit or -)')
        .default(DEFAULTS.memberUser),
      /**
       * Folder of the members' own folders (`member-<id>`), relative to the
       * working directory. Run as root, `faultline stack up` hands the
       * autoscaler a folder under its relocation folder instead when the member
       * user cannot pass through this one's parents (README "What members can reach").
       */
      membersDir: z.string().min(1).default('.faultline/members'),
      /**
       * Folder the members' scripts are run from: a checkout, or the runtime
       * copy `faultline stack up` makes of one (the same relative layout:
       * `packages/cloud-controller/dist/workload-main.js`,
       * `packages/cartridge-agent/dist/main.js`, their `node_modules`).
       * Absent: this checkout.
       */
      runtimeDir: z.string().min(1).optional(),
    })
    .prefault({}),
});

const thresholdsSchema = z.strictObject({
  requestsInFlight: z.number().positive().default(DEFAULTS.thresholds.requestsInFlight),
  memoryConsumption: z.number().positive().max(100).default(DEFAULTS.thresholds.memoryConsumption),
  loadAverage: z.number().positive().default(DEFAULTS.thresholds.loadAverage),
});

/** The probes of a member (README "Probes"), each run by its cartridge agent next to its workload. */
export const PROBE_KINDS = ['liveness', 'readiness', 'startup'] as const;
export type ProbeKind = (typeof PROBE_KINDS)[number];

/** Largest JSON of a cluster's probes: FAULTLINE_AGENT_PROBES stays far below the kernel's bound of one variable (128 KiB). */
export const MAX_PROBES_JSON_CHARS = 16 * 1024;

/** The longest delay a Node timer takes. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const probeMs = z.number().int().positive().max(MAX_TIMER_MS);
const probeCount = z.number().int().min(1).max(1_000);

/** What every probe type has: when it runs, how long a check may take, how many results in a row count. */
const probeTiming = {
  /**
   * Between the starts of two checks; a check still running when the next is
   * due delays it (a probe never overlaps itself).
   * @default agent.statIntervalMs (liveness, readiness); the agent's activation poll, 1 000 (startup)
   */
  periodMs: probeMs.optional(),
  /** A check not passed within this failed (the connection is closed, the command killed). */
  timeoutMs: probeMs.default(DEFAULTS.probes.timeoutMs),
  /** Passes in a row that make a failing probe pass again (and the startup probe pass). */
  successThreshold: probeCount.default(DEFAULTS.probes.successThreshold),
};

/** An HTTP path as a request line takes it: from `/`, no space or control character. */
const probePath = z
  .string()
  .max(1_024)
  .regex(/^\/[!-~]*$/, 'must start with / and hold no space or control character');

/**
 * One probe: `http` (GET `path` on the workload's host, on `port` or the
 * workload's own; passes when the status is `expectStatus`), `tcp` (a connect
 * to `port` or the workload's) or `exec` (`command`, an argv run without a
 * shell, as the member's user, in the member's folder; passes on exit 0).
 * `failureThreshold` is added per kind (the startup probe has none).
 */
const probeTypes = <T extends z.ZodRawShape>(extra: T) =>
  z.discriminatedUnion(
    'type',
    [
      z.strictObject({
        type: z.literal('http'),
        /** @default /stats (liveness, readiness), /healthz (startup): the routes the agent has always read */
        path: probePath.optional(),
        expectStatus: z.number().int().min(100).max(599).default(DEFAULTS.probes.expectStatus),
        port: z.number().int().min(1).max(65_535).optional(),
        ...probeTiming,
        ...extra,
      }),
      z.strictObject({
        type: z.literal('tcp'),
        port: z.number().int().min(1).max(65_535).optional(),
        ...probeTiming,
        ...extra,
      }),
      z.strictObject({
        type: z.literal('exec'),
        /** argv: the program (a path, or a name looked up on the member's PATH) and its arguments; never a shell line. */
        command: z
          .array(
            z
              .string()
              .min(1)
              .max(1_024)
              .regex(/^[^\0]*$/, 'must hold no NUL character'),
          )
          .min(1, 'must name the program')
          .max(32),
        ...probeTiming,
        ...extra,
      }),
    ],
    { error: 'must have type http, tcp or exec' },
  );

/** Liveness and readiness: `failureThreshold` failures in a row make the probe fail. */
export const probeSchema = probeTypes({ failureThreshold: probeCount.default(DEFAULTS.probes.failureThreshold) });

/**
 * The startup probe gates activation (InstanceActivatedEvent): tried until it
 * passes, never a fault. A member that never passes it stays pending and is
 * replaced after `autoscaler.pendingTimeoutMs`, so it has no failureThreshold.
 */
export const startupProbeSchema = probeTypes({
  failureThreshold: z
    .undefined({
      error:
        'the startup probe has no failureThreshold: a member that never passes it is replaced after autoscaler.pendingTimeoutMs',
    })
    .optional(),
});

export type ProbeConfig = z.output<typeof probeSchema>;
export type StartupProbeConfig = z.output<typeof startupProbeSchema>;

/** An http probe's path when it names none, by kind. */
const DEFAULT_PROBE_PATHS: Readonly<Record<ProbeKind, string>> = {
  liveness: DEFAULTS.probes.livenessPath,
  readiness: DEFAULTS.probes.readinessPath,
  startup: DEFAULTS.probes.startupPath,
};

function withPath<P extends ProbeConfig | StartupProbeConfig>(kind: ProbeKind, probe: P): P {
  return probe.type === 'http' && probe.path === undefined
    ? ({ ...probe, path: DEFAULT_PROBE_PATHS[kind] } as P)
    : probe;
}

/**
 * A cluster's probes (`clusters[].probes`, README "Probes"). By default
 * today's checks, minus the single-miss kill: liveness GET /stats (failing
 * after 3 misses in a row), startup GET /healthz; no readiness probe (a member
 * is in service from its activation). The member environment carries them as
 * resolved here (FAULTLINE_AGENT_PROBES), and the agent reads them back with
 * this same schema.
 */
export const clusterProbesSchema = z
  .strictObject({
    liveness: probeSchema.prefault({ type: 'http' }),
    /** None by default: a member is in service from its activation on. */
    readiness: probeSchema.optional(),
    startup: startupProbeSchema.prefault({ type: 'http' }),
  })
  .transform((probes) => ({
    liveness: withPath('liveness', probes.liveness),
    ...(probes.readiness === undefined ? {} : { readiness: withPath('readiness', probes.readiness) }),
    startup: withPath('startup', probes.startup),
  }))
  .refine((probes) => JSON.stringify(probes).length <= MAX_PROBES_JSON_CHARS, {
    message: `must encode within ${MAX_PROBES_JSON_CHARS} characters of JSON (the member environment carries them)`,
  });

export type ClusterProbes = z.output<typeof clusterProbesSchema>;

/**
 * Member ids are `<cluster id>-<6 characters>` and must still be ids (at most
 * 128 characters), so a cluster id leaves room for that suffix.
 */
const CLUSTER_ID_MAX_LENGTH = 128 - 7;

export const clusterSchema = z
  .strictObject({
    id: id.max(CLUSTER_ID_MAX_LENGTH, `at most ${CLUSTER_ID_MAX_LENGTH} characters (member ids add 7)`),
    cartridgeType: id,
    min: z.number().int().min(0),
    max: z.number().int().positive(),
    partitions: z
      .array(z.strictObject({ id, networkPartitionId: id.default('np-1') }))
      .min(1)
      .default([{ id: 'p-1', networkPartitionId: 'np-1' }]),
    thresholds: thresholdsSchema.prefault({}),
    /** Workload behaviour of this cluster's members (local driver). */
    workload: z.strictObject({ latencyMs: z.number().int().min(0).default(DEFAULTS.workloadLatencyMs) }).prefault({}),
    /** Liveness, readiness and startup probes of this cluster's members, run by their agents (README "Probes"). */
    probes: clusterProbesSchema.prefault({}),
    /**
     * Graceful drain (README "Autoscaler → Graceful drain"): a member terminated while it still
     * serves (scale down, max rule) stops taking new requests, finishes those in flight and is
     * terminated once idle or after this long. 0: no drain. A faulted member never drains.
     */
    drainTimeoutMs: z.number().int().min(0).max(MAX_TIMER_MS).default(DEFAULTS.drainTimeoutMs),
    /**
     * How long a draining member still takes new requests, before its workload refuses them: the
     * time load balancers have to read the mark (`MemberReadyToShutdownEvent`, the status' `drainingUntil`).
     * Part of drainTimeoutMs, not added to it.
     */
    drainDelayMs: z.number().int().min(0).max(MAX_TIMER_MS).default(DEFAULTS.drainDelayMs),
    /**
     * A second witness before a kill (README "Autoscaler → Second witness"): on
     * a timeout or an absence of a member whose instance still runs, the cloud
     * controller probes its workload; one that answers keeps its instance and
     * gets a new agent, at most maxRestarts times within withinMs. Off: such a
     * member is terminated and replaced.
     */
    secondWitness: z
      .strictObject({
        enabled: z.boolean().default(DEFAULTS.secondWitness.enabled),
        maxRestarts: z.number().int().positive().default(DEFAULTS.secondWitness.maxRestarts),
        withinMs: ms(DEFAULTS.secondWitness.withinMs),
      })
      .prefault({}),
    /**
     * Scale stabilization (README "Autoscaler", rule 5): a scale down goes no lower than the highest
     * member count recommended within `scaleDownWindowMs`; no scaling-rule action for `cooldownMs`
     * after the last one; at most `maxStep` members per decision. Off by default (Stratos' behaviour).
     */
    scaling: z
      .strictObject({
        scaleDownWindowMs: z.number().int().min(0).default(DEFAULTS.scaling.scaleDownWindowMs),
        cooldownMs: z.number().int().min(0).default(DEFAULTS.scaling.cooldownMs),
        maxStep: z.number().int().positive().default(DEFAULTS.scaling.maxStep),
      })
      .prefault({}),
  })
  .refine((c) => c.min <= c.max, { message: 'min must not exceed max', path: ['min'] })
  .refine((c) => c.drainTimeoutMs === 0 || c.drainDelayMs < c.drainTimeoutMs, {
    message:
      'must be less than drainTimeoutMs: the delay is part of the drain, and one that takes all of it leaves no time to finish the requests in flight (drainTimeoutMs 0 turns the drain off)',
    path: ['drainDelayMs'],
  });

/**
 * Platform secrets, each a file (mode 0600) holding one random key: never a
 * value in the configuration itself, never a built-in default value.
 * `faultline stack up` creates any that is missing; a service started any
 * other way refuses to start without it (README "Security").
 */
const securitySchema = z.strictObject({
  /** Key of the member credentials: the cloud controller issues them, the SP verifies them. */
  memberKeyFile: z.string().min(1).default('.faultline/secrets/member.key'),
  /** Shared secret of the SP pair's sync link: both ends prove they hold it. */
  syncKeyFile: z.string().min(1).default('.faultline/secrets/sync.key'),
  /** Bearer token of the SP nodes' privileged status calls (`/engine`). */
  statusTokenFile: z.string().min(1).default('.faultline/secrets/status.token'),
});

/**
 * TLS of one port, off when absent (README "TLS"): PEM files of the server's
 * certificate and key, and of the CA its clients verify that certificate with.
 */
const tlsFilesSchema = z.strictObject({
  certFile: z.string().min(1),
  keyFile: z.string().min(1),
  caFile: z.string().min(1),
});

const tlsSchema = z.strictObject({
  /** The SP nodes' Thrift port; agents verify its certificate against caFile. */
  thrift: tlsFilesSchema.optional(),
  /** The brokers (mqtts); every MQTT client verifies them against caFile. */
  mqtt: tlsFilesSchema.optional(),
});

export type TlsFilesConfig = z.infer<typeof tlsFilesSchema>;

export const configSchema = z
  .strictObject({
    logging: z
      .strictObject({
        level: z.enum(LOG_LEVELS).default('info'),
        /** Folder of the per-service JSON-lines files, relative to the working directory. */
        dir: z.string().default('.faultline/logs'),
        /** A service's file is rotated past this size (`<service>.1.jsonl` the newest rotated)… */
        maxFileBytes: z
          .number()
          .int()
          .min(64 * 1024)
          .default(DEFAULTS.logMaxFileBytes),
        /** …and this many files are kept per service, the current one included. */
        maxFiles: z.number().int().min(2).max(100).default(DEFAULTS.logMaxFiles),
        /**
         * How often the supervisor looks at the raw outputs no logger rotates (each member's
         * `member-<id>.jsonl`, PostgreSQL's and Mosquitto's `.log`): one past maxFileBytes is copied to
         * `.1` and truncated (copytruncate), maxFiles kept.
         */
        outputCheckIntervalMs: z.number().int().min(1_000).max(3_600_000).default(DEFAULTS.logOutputCheckIntervalMs),
      })
      .prefault({}),
    database: z
      .strictObject({
        /** A PostgreSQL URL. When absent, the stack starts an embedded PostgreSQL. */
        url: z.string().url().optional(),
        embeddedPort: port.default(5439),
        embeddedDataDir: z.string().default('.faultline/pg'),
      })
      .prefault({}),
    brokers: brokersSchema.prefault({}),
    messaging: messagingSchema.prefault({}),
    streamProcessor: streamProcessorSchema.prefault({}),
    cep: cepSchema.prefault({}),
    agent: agentSchema.prefault({}),
    autoscaler: autoscalerSchema.prefault({}),
    cloudController: cloudControllerSchema.prefault({}),
    supervisor: supervisorSchema.prefault({}),
    console: consoleSchema.prefault({}),
    security: securitySchema.prefault({}),
    tls: tlsSchema.prefault({}),
    clusters: z.array(clusterSchema).default([]),
  })
  .refine((c) => new Set(c.clusters.map((x) => x.id)).size === c.clusters.length, {
    message: 'cluster ids must be unique',
    path: ['clusters'],
  })
  // A restarted agent that dies again is found by the absence rule one fault timeout and one summary
  // interval later: a window shorter than maxRestarts + 1 of those forgets each restart before the next
  // fault, and the member would be repaired for ever instead of replaced.
  .superRefine((c, ctx) => {
    const period = c.cep.faultTimeoutMs + c.cep.summaryIntervalMs;
    c.clusters.forEach((cluster, i) => {
      const w = cluster.secondWitness;
      if (!w?.enabled || w.withinMs >= (w.maxRestarts + 1) * period) return;
      ctx.addIssue({
        code: 'custom',
        path: ['clusters', i, 'secondWitness', 'withinMs'],
        message: `must be at least (maxRestarts + 1) × (cep.faultTimeoutMs + cep.summaryIntervalMs) = ${(w.maxRestarts + 1) * period} ms, or a member whose new agent dies again is repaired for ever`,
      });
    });
  })
  .refine((c) => new Set(c.autoscaler.nodes.map((n) => n.id)).size === c.autoscaler.nodes.length, {
    message: 'autoscaler node ids must be unique',
    path: ['autoscaler', 'nodes'],
  })
  .refine((c) => c.autoscaler.groupId !== c.streamProcessor.groupId, {
    message: 'must differ from streamProcessor.groupId (both leases live in one table)',
    path: ['autoscaler', 'groupId'],
  })
  .refine((c) => c.autoscaler.fencingMarginMs < c.autoscaler.heartbeatIntervalMs * c.autoscaler.heartbeatMaxRetry, {
    message: 'must be shorter than heartbeatIntervalMs × heartbeatMaxRetry',
    path: ['autoscaler', 'fencingMarginMs'],
  })
  .superRefine((c, ctx) => {
    // A broker url's scheme says what tls.mqtt says: every MQTT client speaks mqtts exactly when it is set.
    c.brokers.nodes.forEach((node, i) => {
      const parsed = node.url === undefined ? undefined : parseBrokerUrl(node.url);
      if (typeof parsed !== 'object') return;
      const tls = c.tls.mqtt !== undefined;
      if (parsed.scheme === 'mqtts' && !tls) {
        ctx.addIssue({
          code: 'custom',
          path: ['brokers', 'nodes', i, 'url'],
          message:
            'mqtts:// needs tls.mqtt (its caFile is what the services verify the broker with): set it, or write mqtt://',
        });
      } else if (parsed.scheme === 'mqtt' && tls) {
        ctx.addIssue({
          code: 'custom',
          path: ['brokers', 'nodes', i, 'url'],
          message: 'tls.mqtt is set, so every MQTT client connects over TLS: write mqtts://, or remove tls.mqtt',
        });
      }
    });
  });

export type FaultlineConfig = z.infer<typeof configSchema>;
export type ClusterConfig = z.infer<typeof clusterSchema>;
export type BrokerNodeConfig = z.infer<typeof brokerNodeSchema>;

/**
 * The JSON Schema of the configuration file (what a file may hold, defaults
 * included; env overrides are not part of it): `faultline config schema`, and
 * committed as infra/config/faultline.schema.json for editors.
 */
export function configJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }),
    $id: 'https://faultline.invalid/faultline.schema.json',
    title: 'Faultline configuration (faultline.yaml)',
  };
}
