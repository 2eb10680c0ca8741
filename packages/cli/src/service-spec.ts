import { withDefaults } from '@faultline/core';
import type { Probe } from './liveness.js';

/** One platform service as the supervisor runs it: its command, its probes, how it stops. */
export interface ServiceSpec {
  /** `broker-a`, `sp-1`, `autoscaler-a`, `postgres`: the name in status, logs and chaos. */
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  /** @default the supervisor's */
  cwd?: string;
  /** Run as this user and group (PostgreSQL as `postgres` when the supervisor is root). @default the supervisor's */
  uid?: number;
  gid?: number;
  /** True once the service serves (a port answers, a status call works); polled while it starts. */
  ready: Probe;
  /** True while a ready service is alive; probed every `livenessIntervalMs`. @default ready */
  live?: Probe;
  /**
   * Asked when `ready` or `live` fails: true while the service, though not
   * serving, makes progress (PostgreSQL in crash recovery answers SQLSTATE
   * 57P03, its postmaster.pid says `starting`). Meanwhile no ready deadline
   * runs out and no liveness failure counts: killing a recovery would only
   * start it over. A stopped process (SIGSTOP) makes none. @default none
   */
  starting?: Probe;
  /** How long it has to be ready after its last sign of progress. @default the supervisor's `readyTimeoutMs` */
  readyTimeoutMs?: number;
  /** Restart it when it dies (platform services). @default true */
  restart?: boolean;
  /** Exit codes that mean "do not restart me, stop the stack": runMain's 2 (a ConfigError). @default [2] */
  fatalExitCodes?: readonly number[];
  /**
   * What stops it cleanly, in turn, `stopGraceMs` apart, before SIGKILL to
   * its process group: runMain's SIGTERM; PostgreSQL's fast shutdown
   * (SIGINT), then its immediate one (SIGQUIT). @default ['SIGTERM']
   */
  stopSignals?: readonly NodeJS.Signals[];
  /**
   * What a service that must go (it stopped answering, or did not come
   * back in time) gets before SIGKILL, `stopGraceMs` apart. A Faultline
   * service that does not answer would not close either: none, SIGKILL at
   * once. PostgreSQL: SIGINT, SIGQUIT (a SIGKILLed postmaster leaves its
   * data to a crash recovery). @default []
   */
  killSignals?: readonly NodeJS.Signals[];
  /**
   * Its children leave its process group (every PostgreSQL child calls
   * setsid()): before it is SIGKILLed, each process whose parent it is is
   * SIGKILLed too (process-table.ts killTree). @default false
   */
  killChildren?: boolean;
  /**
   * The supervisor's whole environment under `env`. False: only PATH, the
   * locale (LANG, LANGUAGE, LC_*), TZ, TMPDIR and LD_LIBRARY_PATH of it: a
   * program that is not Faultline's (PostgreSQL, Mosquitto) gets none of
   * root's other variables. @default true
   */
  inheritEnv?: boolean;
  /** Plain-text output of a service that does not write its own JSON log (Mosquitto, PostgreSQL); mode 0600. */
  outputFile?: string;
  /** Its output on the supervisor's console too. @default true */
  console?: boolean;
}

export type ResolvedServiceSpec = ServiceSpec &
  Required<
    Pick<
      ServiceSpec,
      'restart' | 'fatalExitCodes' | 'stopSignals' | 'killSignals' | 'killChildren' | 'inheritEnv' | 'console'
    >
  >;

export type ServiceState = 'starting' | 'up' | 'restarting' | 'stopped' | 'failed';

/** One service as `stack status` shows it. */
export interface ServiceView {
  name: string;
  pid: number | undefined;
  state: ServiceState;
  restarts: number;
}

/**
 * A spec with its defaults: restarted, fatal on exit 2 (runMain's
 * ConfigError), stopped by SIGTERM, killed by SIGKILL at once, the
 * supervisor's environment, on the console.
 */
export function resolveServiceSpec(input: ServiceSpec): ResolvedServiceSpec {
  return withDefaults(
    {
      restart: true,
      fatalExitCodes: [2] as readonly number[],
      stopSignals: ['SIGTERM'] as readonly NodeJS.Signals[],
      killSignals: [] as readonly NodeJS.Signals[],
      killChildren: false,
      inheritEnv: true,
      console: true,
    },
    input,
  );
}

/** What of the supervisor's environment a service with `inheritEnv: false` gets. */
const MINIMAL_ENV = /^(PATH|LANG|LANGUAGE|LC_[A-Z_]+|TZ|TMPDIR|LD_LIBRARY_PATH)$/;

/** The environment a service is started with, before the supervisor's own flag. */
export function serviceEnv(spec: ResolvedServiceSpec, parent: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const base = spec.inheritEnv
    ? parent
    : Object.fromEntries(Object.entries(parent).filter(([key]) => MINIMAL_ENV.test(key)));
  return { ...base, ...spec.env };
}
