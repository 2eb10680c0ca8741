import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ensureSecretFile, mkdirPrivate, readSecretFile } from '@faultline/core';
import { TEST_MEMBER_KEY } from '@faultline/protocol/testing';

/**
 * A member key file holding TEST_MEMBER_KEY (0600, folder 0700): the key every
 * test broker checks members' logins with, so members a test's driver spawns
 * (and TEST_CREDENTIALS.agent) can log in to the test brokers.
 */
export function writeTestMemberKey(file: string): string {
  mkdirPrivate(path.dirname(file));
  writeFileSync(file, `${TEST_MEMBER_KEY.toString('utf8')}\n`, { mode: 0o600 });
  return file;
}

/**
 * The `security` section of a test's config, as `stack up` makes it: fresh
 * sync key and status token in `dir/secrets`, and the member key the test
 * brokers share (writeTestMemberKey).
 */
export function testSecrets(dir: string): { memberKeyFile: string; syncKeyFile: string; statusTokenFile: string } {
  const files = {
    memberKeyFile: writeTestMemberKey(path.join(dir, 'secrets', 'member.key')),
    syncKeyFile: path.join(dir, 'secrets', 'sync.key'),
    statusTokenFile: path.join(dir, 'secrets', 'status.token'),
  };
  ensureSecretFile(files.syncKeyFile);
  ensureSecretFile(files.statusTokenFile);
  return files;
}

/** The key in a secret file `testSecrets` made (to sign or verify as the services do). */
export function testSecret(file: string): Buffer {
  return readSecretFile(file, 'test');
}
