import type { ListeningSocket, SocketListing, SocketTable } from '../socket-table.js';

/**
 * An in-memory socket table for unit tests of the local driver's agent
 * targets: listening sockets with their inodes, and which process holds each.
 */
export class FakeSocketTable implements SocketTable {
  private readonly sockets: (ListeningSocket & { pid: number })[] = [];
  private nextInode = 10_000;
  /** Pids whose descriptors cannot be read, with why. */
  readonly unreadable = new Map<number, string>();
  truncated = false;
  /** How many times the listening sockets were read (once per sync at most). */
  listings = 0;

  /** Process `pid` listens on `address`:`port` (IPv4 dotted, IPv6 as `isIP` takes it); returns the inode. */
  listen(pid: number, port: number, address = '127.0.0.1'): number {
    const inode = this.nextInode++;
    const family = address.includes(':') ? 'ipv6' : 'ipv4';
    this.sockets.push({ pid, inode, family, address, port });
    return inode;
  }

  /** Every socket of `pid` closes (the process exited). */
  closeAll(pid: number): void {
    for (let i = this.sockets.length - 1; i >= 0; i--) if (this.sockets[i]?.pid === pid) this.sockets.splice(i, 1);
  }

  async listening(): Promise<SocketListing> {
    this.listings += 1;
    return { sockets: this.sockets.map(({ pid: _pid, ...socket }) => socket), truncated: this.truncated };
  }

  async socketInodes(pid: number, _max: number): Promise<Set<number> | string> {
    const why = this.unreadable.get(pid);
    if (why !== undefined) return why;
    return new Set(this.sockets.filter((s) => s.pid === pid).map((s) => s.inode));
  }
}
