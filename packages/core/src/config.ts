import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { BROKER_CREDENTIAL_ROLES, configSchema, type FaultlineConfig } from './config-schema.js';
import { ConfigError, type ConfigIssue } from './errors.js';

export { configJsonSchema, configSchema, type FaultlineConfig } from './config-schema.js';

/** The repository root, found from this file (packages/core/{src,dist}/config.*). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const DEFAULT_CONFIG_PATH = path.join(REPO_ROOT, 'infra/config/faultline.yaml');

export interface LoadConfigOptions {
  /** @default env.FAULTLINE_CONFIG, else infra/config/faultline.yaml */
  path?: string;
  /** Environment for overrides. @default process.env */
  env?: NodeJS.ProcessEnv;
}

/**
 * `cep.faultTimeoutMs` → `FAULTLINE_CEP_FAULT_TIMEOUT_MS`. Every scalar key that
 * is not inside a list can be overridden this way; `DATABASE_URL` and
 * `FAULTLINE_LOG_LEVEL` are the two conventional shortcuts.
 */
export function envNameFor(keyPath: readonly string[]): string {
  const words = keyPath.map((key) => key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase());
  return `FAULTLINE_${words.join('_')}`;
}

const SHORTCUTS: Record<string, string> = {
  DATABASE_URL: 'database.url',
  FAULTLINE_LOG_LEVEL: 'logging.level',
};

/**
 * Optional string keys without a default: absent from the resolved config, so
 * the walk below would not find them; their variables are looked up anyway
 * (`FAULTLINE_BROKERS_CREDENTIALS_SP_PASSWORD_FILE`, …,
 * `FAULTLINE_CLOUD_CONTROLLER_LOCAL_RUNTIME_DIR`).
 */
const OPTIONAL_KEYS: readonly (readonly string[])[] = [
  ...BROKER_CREDENTIAL_ROLES.map((role) => ['brokers', 'credentials', role, 'passwordFile']),
  ['cloudController', 'local', 'runtimeDir'],
];

function formatIssues(source: string, issues: ConfigIssue[]): string {
  return [`invalid configuration in ${source}:`, ...issues.map((i) => `  - ${i.key}: ${i.reason}`)].join('\n');
}

function toIssues(error: z.ZodError, envSources: Map<string, string>): ConfigIssue[] {
  return error.issues.map((issue) => {
    const key = issue.path.map(String).join('.') || '(root)';
    const fromEnv = envSources.get(key);
    return { key, reason: fromEnv ? `${issue.message} (set by ${fromEnv})` : issue.message };
  });
}

function setPath(target: Record<string, unknown>, keyPath: readonly string[], value: unknown): void {
  let node = target;
  for (const key of keyPath.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keyPath[keyPath.length - 1] as string] = value;
}

function coerce(raw: string, like: unknown): unknown {
  if (typeof like === 'number') return raw.trim() === '' ? Number.NaN : Number(raw);
  if (typeof like === 'boolean') return raw === 'true' ? true : raw === 'false' ? false : raw;
  return raw;
}

/** Applies `FAULTLINE_*` overrides for every scalar the resolved config has, and for OPTIONAL_KEYS. */
function applyEnv(
  raw: Record<string, unknown>,
  resolved: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  sources: Map<string, string>,
): void {
  const visit = (node: Record<string, unknown>, keyPath: string[]): void => {
    for (const [key, value] of Object.entries(node)) {
      const here = [...keyPath, key];
      if (value !== null && typeof value === 'object') {
        if (!Array.isArray(value)) visit(value as Record<string, unknown>, here);
        continue;
      }
      const name = envNameFor(here);
      const fromEnv = env[name];
      if (fromEnv !== undefined) {
        setPath(raw, here, coerce(fromEnv, value));
        sources.set(here.join('.'), name);
      }
    }
  };
  visit(resolved, []);
  for (const keyPath of OPTIONAL_KEYS) {
    const name = envNameFor(keyPath);
    const fromEnv = env[name];
    if (fromEnv !== undefined && !sources.has(keyPath.join('.'))) {
      setPath(raw, keyPath, fromEnv);
      sources.set(keyPath.join('.'), name);
    }
  }
  for (const [name, dotted] of Object.entries(SHORTCUTS)) {
    const fromEnv = env[name];
    if (fromEnv !== undefined && fromEnv !== '') {
      setPath(raw, dotted.split('.'), fromEnv);
      sources.set(dotted, name);
    }
  }
}

/**
 * Validates an already-parsed object (YAML or a test's literal) and applies env
 * overrides. Throws ConfigError naming each bad key.
 */
export function resolveConfig(
  input: unknown,
  options: { source?: string; env?: NodeJS.ProcessEnv } = {},
): FaultlineConfig {
  const source = options.source ?? '(inline)';
  const raw = structuredClone(input ?? {}) as Record<string, unknown>;
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(
      'FL_ERR_CONFIG_INVALID',
      formatIssues(source, [{ key: '(root)', reason: 'expected a mapping' }]),
      {
        issues: [{ key: '(root)', reason: 'expected a mapping' }],
        context: { source },
      },
    );
  }
  const sources = new Map<string, string>();
  const first = configSchema.safeParse(raw);
  if (first.success) applyEnv(raw, first.data as Record<string, unknown>, options.env ?? process.env, sources);
  const second = sources.size > 0 || !first.success ? configSchema.safeParse(raw) : first;
  if (!second.success) {
    const issues = toIssues(second.error, sources);
    throw new ConfigError('FL_ERR_CONFIG_INVALID', formatIssues(source, issues), { issues, context: { source } });
  }
  return second.data;
}

/** Reads the YAML file, applies env overrides, validates. Throws ConfigError. */
export function loadConfig(options: LoadConfigOptions = {}): FaultlineConfig {
  const env = options.env ?? process.env;
  const file = path.resolve(options.path ?? (env.FAULTLINE_CONFIG || DEFAULT_CONFIG_PATH));
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (cause) {
    throw new ConfigError('FL_ERR_CONFIG_NOT_FOUND', `cannot read configuration file ${file}`, {
      cause,
      context: { file },
    });
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (cause) {
    const reason = cause instanceof Error ? (cause.message.split('\n')[0] ?? 'invalid YAML') : 'invalid YAML';
    const issues = [{ key: '(yaml)', reason }];
    throw new ConfigError('FL_ERR_CONFIG_INVALID', formatIssues(file, issues), { cause, issues, context: { file } });
  }
  return resolveConfig(parsed ?? {}, { source: file, env });
}
