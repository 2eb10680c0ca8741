import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { BrokerCredentialRole, FaultlineConfig } from './config-schema.js';
import { ConfigError } from './errors.js';

/** Random bytes in a new secret; base64url text of 43 characters. */
const SECRET_BYTES = 32;
/** Shortest secret accepted from a file an operator wrote. */
export const MIN_SECRET_LENGTH = 32;

/**
 * Creates the folder `dir` with mode 0700 if it is missing; missing parents
 * get the usual mode (the umask's), so a shared parent such as `.faultline`
 * stays traversable by the embedded PostgreSQL's user. An existing folder
 * keeps its mode.
 */
export function mkdirPrivate(dir: string): void {
  mkdirSync(path.dirname(dir), { recursive: true });
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

/**
 * Creates the secret file at `file` if it does not exist: 32 random bytes as
 * base64url text, mode 0600, in a folder of mode 0700. An existing file is
 * kept (a restarted stack reuses its secrets). Safe against a concurrent
 * creator: the file is created exclusively.
 */
export function ensureSecretFile(file: string): void {
  const dir = path.dirname(file);
  mkdirPrivate(dir);
  chmodSync(dir, 0o700);
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw error;
  }
  try {
    writeSync(fd, `${randomBytes(SECRET_BYTES).toString('base64url')}\n`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Reads a secret file named by the config key `key` (e.g.
 * `security.memberKeyFile`). Refuses, naming the key, a file that is missing,
 * readable by group or others, or shorter than MIN_SECRET_LENGTH characters:
 * a ConfigError, so a service's main exits 2 with the reason.
 */
export function readSecretFile(file: string, key: string): Buffer {
  let mode: number;
  let text: string;
  try {
    mode = statSync(file).mode;
    text = readFileSync(file, 'utf8').trim();
  } catch (cause) {
    throw ConfigError.forKey(
      key,
      `cannot read ${file} (${(cause as NodeJS.ErrnoException).code ?? String(cause)}); \`faultline stack up\` creates it, or write ${SECRET_BYTES} random bytes as base64url into it with mode 0600`,
      { file },
    );
  }
  if ((mode & 0o077) !== 0) {
    throw ConfigError.forKey(key, `${file} is readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`, {
      file,
    });
  }
  if (text.length < MIN_SECRET_LENGTH) {
    throw ConfigError.forKey(key, `${file} holds fewer than ${MIN_SECRET_LENGTH} characters`, { file });
  }
  return Buffer.from(text, 'utf8');
}

/**
 * Where `faultline stack up` generates a broker role's password when the
 * configuration gives the role neither `password` nor `passwordFile`
 * (relative to the working directory, beside the `security.*` files).
 */
export function generatedBrokerPasswordFile(role: BrokerCredentialRole): string {
  return `.faultline/secrets/broker-${role}.password`;
}

/**
 * The password of a broker role: `brokers.credentials.<role>.password`, else
 * the content of its `passwordFile` (checked like every secret file). The one
 * place every service, the aedes broker and the Mosquitto writer read it, so
 * they agree. Neither given is a ConfigError naming the key (a main exits 2):
 * only `faultline stack up` generates passwords.
 */
export function brokerPassword(config: FaultlineConfig, role: BrokerCredentialRole): string {
  const credential = config.brokers.credentials[role];
  if (credential.password !== undefined) return credential.password;
  const key = `brokers.credentials.${role}`;
  if (credential.passwordFile === undefined) {
    throw ConfigError.forKey(
      key,
      `no password: set ${key}.passwordFile (or FAULTLINE_BROKERS_CREDENTIALS_${role.toUpperCase()}_PASSWORD_FILE) to a file of mode 0600, or ${key}.password; \`faultline stack up\` generates one`,
    );
  }
  return readSecretFile(credential.passwordFile, `${key}.passwordFile`).toString('utf8');
}

/** `{ username, password }` of a broker role, the password read by brokerPassword. */
export function brokerCredential(
  config: FaultlineConfig,
  role: BrokerCredentialRole,
): { username: string; password: string } {
  return { username: config.brokers.credentials[role].username, password: brokerPassword(config, role) };
}
