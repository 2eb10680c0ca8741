import { open, opendir, readlink } from 'node:fs/promises';
import os from 'node:os';

/** One listening TCP socket of the driver's network namespace, as /proc/net/tcp and tcp6 list it. */
export interface ListeningSocket {
  /** The socket's inode: what `/proc/<pid>/fd/*` links name as `socket:[<inode>]`. */
  inode: number;
  family: 'ipv4' | 'ipv6';
  /** The address it is bound to: dotted IPv4, or IPv6 as eight groups of hex digits. */
  address: string;
  port: number;
}

export interface SocketListing {
  sockets: ListeningSocket[];
  /** A table larger than the driver reads: the sockets past the limit are not listed. */
  truncated: boolean;
}

/**
 * The narrow view of the kernel's sockets the local driver needs to tell
 * whether a port is one its member's agent listens on, behind an interface so
 * the driver's target files are unit-tested against a fake.
 */
export interface SocketTable {
  /** Every listening TCP socket (IPv4 and IPv6) of the driver's network namespace. */
  listening(): Promise<SocketListing>;
  /**
   * The inodes of the sockets among process `pid`'s open descriptors, looking
   * at no more than `max` descriptors; a string says why there is no answer
   * (no such process, unreadable, more than `max` descriptors).
   */
  socketInodes(pid: number, max: number): Promise<Set<number> | string>;
}

/** Largest /proc/net/tcp{,6} read: some 200 000 sockets each; the rest is not looked at. */
export const MAX_SOCKET_TABLE_BYTES = 32 * 1024 * 1024;

/** st of a listening socket in /proc/net/tcp (TCP_LISTEN). */
const TCP_LISTEN = '0A';

/**
 * The bytes of an address as /proc/net/tcp writes them: each 32-bit word in
 * the host's byte order, as hex.
 */
function addressBytes(hex: string): Buffer | undefined {
  if (!/^(?:[0-9A-Fa-f]{8}|[0-9A-Fa-f]{32})$/.test(hex)) return undefined;
  const bytes = Buffer.from(hex, 'hex');
  if (os.endianness() === 'LE') for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  return bytes;
}

function addressText(bytes: Buffer): string {
  if (bytes.length === 4) return [...bytes].join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return groups.join(':');
}

/**
 * The listening sockets of one /proc/net/tcp or tcp6 text: its lines are
 * `sl local_address rem_address st … uid timeout inode …`, addresses as
 * `HEX:PORT` (proc(5)). A line that is not one is skipped.
 */
export function parseListeningSockets(text: string, family: 'ipv4' | 'ipv6'): ListeningSocket[] {
  const sockets: ListeningSocket[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10 || fields[3] !== TCP_LISTEN) continue;
    const [hex, portHex] = (fields[1] ?? '').split(':');
    const bytes = addressBytes(hex ?? '');
    const port = /^[0-9A-Fa-f]{4}$/.test(portHex ?? '') ? Number.parseInt(portHex as string, 16) : Number.NaN;
    const inode = /^[0-9]{1,20}$/.test(fields[9] ?? '') ? Number(fields[9]) : Number.NaN;
    if (!bytes || bytes.length !== (family === 'ipv4' ? 4 : 16) || !(port > 0) || !Number.isSafeInteger(inode)) {
      continue;
    }
    // Inode 0: a socket being torn down, which no descriptor names.
    if (inode === 0) continue;
    sockets.push({ inode, family, address: addressText(bytes), port });
  }
  return sockets;
}

/** Up to `max` bytes of a /proc file (whose size stat does not tell); undefined when there is no such file. */
async function readProcFile(file: string, max: number): Promise<{ text: string; truncated: boolean } | undefined> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const { bytesRead, buffer } = await handle.read(Buffer.alloc(64 * 1024), 0, 64 * 1024, null);
      if (bytesRead === 0) return { text: Buffer.concat(chunks).toString('latin1'), truncated: false };
      if (total + bytesRead > max) {
        chunks.push(buffer.subarray(0, max - total));
        const text = Buffer.concat(chunks).toString('latin1');
        // The last line may be cut: it is dropped.
        return { text: text.slice(0, text.lastIndexOf('\n') + 1), truncated: true };
      }
      chunks.push(buffer.subarray(0, bytesRead));
      total += bytesRead;
    }
  } finally {
    await handle.close();
  }
}

const SOCKET_LINK = /^socket:\[([0-9]{1,20})\]$/;

/** The real table: Linux procfs. */
export const linuxSocketTable: SocketTable = {
  listening: async () => {
    const sockets: ListeningSocket[] = [];
    let truncated = false;
    for (const [file, family] of [
      ['/proc/net/tcp', 'ipv4'],
      ['/proc/net/tcp6', 'ipv6'],
    ] as const) {
      // No tcp6 where IPv6 is off.
      const read = await readProcFile(file, MAX_SOCKET_TABLE_BYTES);
      if (!read) continue;
      truncated ||= read.truncated;
      sockets.push(...parseListeningSockets(read.text, family));
    }
    return { sockets, truncated };
  },
  socketInodes: async (pid, max) => {
    const dir = `/proc/${pid}/fd`;
    let folder: Awaited<ReturnType<typeof opendir>>;
    try {
      folder = await opendir(dir);
    } catch (error) {
      return `its descriptors cannot be read (${(error as NodeJS.ErrnoException).code})`;
    }
    const inodes = new Set<number>();
    let seen = 0;
    try {
      for (let entry = await folder.read(); entry !== null; entry = await folder.read()) {
        seen += 1;
        if (seen > max) return `it has more than ${max} open descriptors`;
        let link: string;
        try {
          link = await readlink(`${dir}/${entry.name}`);
        } catch {
          // Closed meanwhile.
          continue;
        }
        const inode = SOCKET_LINK.exec(link)?.[1];
        if (inode !== undefined) inodes.add(Number(inode));
      }
    } finally {
      await folder.close().catch(() => {});
    }
    return inodes;
  },
};
