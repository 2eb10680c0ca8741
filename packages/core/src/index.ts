export { type Clock, sleep, systemClock, type TimerHandle } from './clock.js';
export {
  configJsonSchema,
  configSchema,
  DEFAULT_CONFIG_PATH,
  envNameFor,
  type FaultlineConfig,
  type LoadConfigOptions,
  loadConfig,
  REPO_ROOT,
  resolveConfig,
} from './config.js';
export {
  BROKER_CREDENTIAL_ROLES,
  type BrokerCredentialRole,
  type BrokerNodeConfig,
  type BrokerUrl,
  type BrokerUrlScheme,
  type ClusterConfig,
  type ClusterProbes,
  clusterProbesSchema,
  MAX_PROBES_JSON_CHARS,
  PROBE_KINDS,
  type ProbeConfig,
  type ProbeKind,
  parseBrokerUrl,
  probeSchema,
  type StartupProbeConfig,
  startupProbeSchema,
  type TlsFilesConfig,
  USER_NAME_PATTERN,
} from './config-schema.js';
export { DEFAULTS } from './defaults.js';
export {
  ClosedError,
  ConfigError,
  type ConfigIssue,
  ERROR_CODES,
  type ErrorCode,
  FaultlineError,
  type FaultlineErrorOptions,
  isFaultlineError,
  MigrationError,
  RelocationError,
} from './errors.js';
export {
  type HealthRoutesOptions,
  type HealthState,
  healthRoutes,
  type MetricsSource,
  type ServedHttp,
  serveHealth,
  serveHttp,
} from './health-routes.js';
export { ID_PATTERN, ID_PATTERN_DESCRIPTION } from './ids.js';
export {
  type Closeable,
  closeAll,
  type MainContext,
  once,
  type RunMainOptions,
  runMain,
  SUPERVISED_ENV,
  withDefaults,
} from './lifecycle.js';
export {
  boundLoggedText,
  colorsWanted,
  createLogger,
  EVENT_KEY_PATTERN,
  type EventFields,
  escapeControlChars,
  formatPretty,
  LOG_LEVELS,
  type LogFields,
  type Logger,
  type LoggerOptions,
  type LogLevel,
  MAX_LOGGED_FIELD_CHARS,
  nullLogger,
  RateLimitedLog,
  type RateLimitedLogOptions,
} from './logger.js';
export { derivedCounter, derivedGauge, oncePerTurn, serviceRegistry } from './metrics.js';
export {
  DEFAULT_MIGRATIONS_DIR,
  EARLIER_CHECKSUMS,
  type MigrateOptions,
  type MigrateResult,
  migrate,
} from './migrate.js';
export { createPgPool, type PgPoolOptions } from './pg-pool.js';
export { RecentMap } from './recent-map.js';
export {
  othersCanPass,
  prepareRelocation,
  RELOCATION_ROOT,
  type RelocationPlan,
  RUNTIME_FOLDERS,
  type RuntimeLayout,
  type RuntimeLayoutInput,
  relocationKey,
  runtimeLayout,
} from './relocation.js';
export { err, ok, type Result } from './result.js';
export {
  dependencyClosure,
  ensureRuntimeMirror,
  findPackage,
  MIRROR_MANIFEST,
  MIRROR_ROOTS,
  type MirrorPackage,
  packageEntry,
  type RuntimeMirrorOptions,
  type RuntimeMirrorResult,
  runtimeModuleUrl,
} from './runtime-mirror.js';
export {
  brokerCredential,
  brokerPassword,
  ensureSecretFile,
  generatedBrokerPasswordFile,
  MIN_SECRET_LENGTH,
  mkdirPrivate,
  readSecretFile,
} from './secrets.js';
export { readTlsFiles, type TlsMaterial } from './tls.js';
