import { constants, lstatSync, opendirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { mkdirPrivate } from '@faultline/core';
import { type Endpoint, idSchema, isId, memberIdentityShape } from '@faultline/protocol';
import { z } from 'zod';
import type { CartridgeMemberIdentity } from './iaas.js';
import { type LocalHandle, localHandleSchema } from './member-processes.js';
import { describeIssues, intIn, issuesOf, portSchema } from './validate.js';

/**
 * What the local driver records of each member it spawns, so that a later
 * life of the driver finds it again (`discover()`) even when nobody kept its
 * instance (the autoscaler died between spawn and its registry write, or
 * PostgreSQL was down). Written before any process of the member starts
 * (`handle` and `address` null), again the moment the workload has a pid
 * (`handle`), and once it is ready (`address`): at no time does a member run
 * that its record does not name, but for the few microseconds between
 * child_process.spawn() returning and the synchronous write that follows.
 *
 * The records live in `<runDir>/instances`, the platform's folder (mode 0700),
 * not in the member's own folder: a member owns that folder and could unlink,
 * replace or swap (between members, who share one user) any file in it.
 */
export interface InstanceRecord extends CartridgeMemberIdentity {
  driver: 'local';
  spawnedAt: number;
  /** Null until the workload reported ready. */
  address: Endpoint | null;
  /** Null until the workload was started. */
  handle: LocalHandle | null;
}

/** The records folder under the driver's runDir. */
export const RECORDS_FOLDER = 'instances';
/** A record is a few hundred bytes; a larger file is not one. */
export const MAX_RECORD_BYTES = 16 * 1024;

const RECORD_NAME = /^member-(.+)\.json$/;

export const recordName = (memberId: string): string => `member-${memberId}.json`;

/** The member id a record file is named for, or undefined for any other name. */
export function memberIdOfRecord(name: string): string | undefined {
  const id = RECORD_NAME.exec(name)?.[1];
  return id !== undefined && isId(id) ? id : undefined;
}

const recordSchema = z.looseObject({
  ...memberIdentityShape,
  cartridgeType: idSchema,
  driver: z.literal('local'),
  spawnedAt: intIn(0, Number.MAX_SAFE_INTEGER),
  address: z
    .looseObject(
      { host: z.string({ error: 'must be a string' }).min(1, { error: 'must be a string' }), port: portSchema },
      { error: 'must be an object' },
    )
    .nullable(),
  handle: localHandleSchema.nullable(),
});

/**
 * Writes `record` whole (aside, then renamed over the old one: a reader never
 * sees half of it), mode 0600 in a folder of mode 0700. Synchronous: it is
 * called in the same tick as the spawn of the workload. Throws on failure.
 */
export function writeRecord(dir: string, record: InstanceRecord): void {
  mkdirPrivate(dir);
  const file = path.join(dir, recordName(record.memberId));
  const aside = `${file}.tmp`;
  rmSync(aside, { force: true });
  writeFileSync(aside, JSON.stringify(record), { mode: 0o600, flag: 'wx' });
  renameSync(aside, file);
}

/** Removes a member's record (a terminated member, a failed spawn). Never throws: a record left is found gone later. */
export function removeRecord(dir: string, memberId: string): string | undefined {
  try {
    rmSync(path.join(dir, recordName(memberId)), { force: true });
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
}

export interface RecordListing {
  /** File names of at most `max` entries (records and anything else found there). */
  names: string[];
  /** More entries than `max`: the rest were not looked at. */
  truncated: boolean;
  /** Why the folder could not be read (undefined when it could, or does not exist yet). */
  problem?: string;
}

/**
 * The entries of the records folder, at most `max` of them, read one by one
 * (never the whole folder at once). A folder that is not the platform's own
 * plain folder is not read at all.
 */
export function listRecords(dir: string, max: number, uid: number | undefined): RecordListing {
  try {
    const stat = lstatSync(dir);
    if (!stat.isDirectory()) return { names: [], truncated: false, problem: 'not a folder' };
    if (uid !== undefined && stat.uid !== uid)
      return { names: [], truncated: false, problem: `owned by uid ${stat.uid}` };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? { names: [], truncated: false } : { names: [], truncated: false, problem: String(code) };
  }
  const names: string[] = [];
  let truncated = false;
  const folder = opendirSync(dir);
  try {
    for (let entry = folder.readSync(); entry !== null; entry = folder.readSync()) {
      if (names.length >= max) {
        truncated = true;
        break;
      }
      names.push(entry.name);
    }
  } finally {
    folder.closeSync();
  }
  return { names, truncated };
}

export type ReadRecordResult = { ok: true; record: InstanceRecord } | { ok: false; reason: string };

/**
 * Reads one record as untrusted input: no symbolic link followed, no FIFO
 * blocked on, a regular file of one link owned by `uid` (the platform) and
 * writable by nobody else, at most MAX_RECORD_BYTES + 1 bytes read, then
 * validated field by field.
 */
export async function readRecord(file: string, uid: number | undefined): Promise<ReadRecordResult> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    return { ok: false, reason: `cannot open it (${(error as NodeJS.ErrnoException).code})` };
  }
  let text: string;
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) return { ok: false, reason: 'not a regular file' };
    if (stat.nlink !== 1) return { ok: false, reason: `a file of ${stat.nlink} links` };
    if (uid !== undefined && stat.uid !== uid)
      return { ok: false, reason: `owned by uid ${stat.uid}, not the platform` };
    if ((stat.mode & 0o022) !== 0) return { ok: false, reason: 'writable by others than the platform' };
    const { bytesRead, buffer } = await handle.read(Buffer.alloc(MAX_RECORD_BYTES + 1), 0, MAX_RECORD_BYTES + 1, 0);
    if (bytesRead > MAX_RECORD_BYTES) return { ok: false, reason: `larger than ${MAX_RECORD_BYTES} bytes` };
    text = buffer.toString('utf8', 0, bytesRead);
  } finally {
    await handle.close();
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'not JSON' };
  }
  const parsed = recordSchema.safeParse(value);
  if (!parsed.success) return { ok: false, reason: describeIssues(issuesOf(parsed.error)).join('; ') };
  return { ok: true, record: parsed.data as InstanceRecord };
}
