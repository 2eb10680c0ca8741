import { readFileSync } from 'node:fs';
import type { TlsFilesConfig } from './config-schema.js';
import { ConfigError } from './errors.js';

/** The PEM contents of a `tls.<port>` section, as node:tls takes them. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

/**
 * Reads the files of a `tls.thrift` or `tls.mqtt` section (`key` names it in
 * errors); `undefined` (TLS off) when the section is absent. A file that
 * cannot be read is a ConfigError naming its key (the service exits 2), never
 * a fallback to plain TCP.
 */
export function readTlsFiles(files: TlsFilesConfig | undefined, key = 'tls'): TlsMaterial | undefined {
  if (!files) return undefined;
  const read = (field: keyof TlsFilesConfig): Buffer => {
    try {
      return readFileSync(files[field]);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      throw ConfigError.forKey(`${key}.${field}`, `cannot read ${files[field]} (${code})`);
    }
  };
  return { cert: read('certFile'), key: read('keyFile'), ca: read('caFile') };
}
