import path from 'node:path';
import { ensureSecretFile, readSecretFile } from '@faultline/core';

/** The `security` section of a test's config: fresh secret files in `dir/secrets`, as `stack up` makes them. */
export function testSecrets(dir: string): { memberKeyFile: string; syncKeyFile: string; statusTokenFile: string } {
  const files = {
    memberKeyFile: path.join(dir, 'secrets', 'member.key'),
    syncKeyFile: path.join(dir, 'secrets', 'sync.key'),
    statusTokenFile: path.join(dir, 'secrets', 'status.token'),
  };
  for (const file of Object.values(files)) ensureSecretFile(file);
  return files;
}

/** The key in a secret file `testSecrets` made (to sign or verify as the services do). */
export function testSecret(file: string): Buffer {
  return readSecretFile(file, 'test');
}
