import { type Clock, FaultlineError, type Logger, RateLimitedLog } from '@faultline/core';
import {
  MAX_CREDENTIAL_LENGTH,
  type MemberCredentialVerifier,
  mayPublish,
  maySubscribe,
  type ServiceRole,
  verifyMemberAccount,
} from '@faultline/protocol';
import type { AedesOptions, AuthErrorCode, AuthenticateError, Client } from 'aedes';
import type { UserTable } from './users.js';

/** What a broker node counts; a snapshot is read through `BrokerNode.counters`. */
export interface BrokerCounters {
  /** CONNECTs accepted (CONNACK 0), over the node's life. */
  connections: number;
  /** Of those, members' agents that logged in with their member credential. */
  memberConnections: number;
  /** CONNECTs refused: anonymous, unknown user or wrong password. */
  authFailures: number;
  /** PUBLISHes the ACL refused (each one also cost its client the connection). */
  publishRefused: number;
  /** Topic filters the ACL refused (SUBACK 0x80; the connection stays). */
  subscribeRefused: number;
  /** PUBLISHes from clients (pings included) that the ACL allowed and the broker routed. */
  published: number;
}

export function emptyCounters(): BrokerCounters {
  return {
    connections: 0,
    memberConnections: 0,
    authFailures: 0,
    publishRefused: 0,
    subscribeRefused: 0,
    published: 0,
  };
}

// aedes declares these as an ambient `const enum`, which isolatedModules cannot
// read, so the two values (MQTT 3.1.1 §3.2.2.3, CONNACK return codes) are here.
const BAD_USERNAME_OR_PASSWORD = 4 as AuthErrorCode;
const NOT_AUTHORIZED = 5 as AuthErrorCode;

const SYS_PREFIX = '$SYS/';

type AccessHooks = Required<Pick<AedesOptions, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe'>>;

/**
 * What the hooks hand aedes for a refused CONNECT or PUBLISH; aedes answers
 * the client (or closes its connection) and emits it as a `clientError`.
 */
export class AccessRefusedError extends FaultlineError {
  constructor(message: string, context: Record<string, unknown>) {
    super('FL_ERR_ACCESS_REFUSED', message, { context });
  }
}

/** Who a connected client authenticated as. */
interface Account {
  role: ServiceRole;
  /** The user name: a member id for a member's account. */
  username: string;
}

export interface AccessControl extends AccessHooks {
  /** The role a connected client authenticated as; undefined before CONNACK. */
  roleOf(client: Client): ServiceRole | undefined;
}

export interface AccessControlOptions {
  /** Checks members' logins (user name a member id, password its credential); undefined: no member logs in. */
  members?: Pick<MemberCredentialVerifier, 'verify'>;
  clock: Clock;
}

/** The peer a refusal is logged under: its address (a client id is the client's to choose). */
function peerOf(client: Client | null): string | undefined {
  const conn = client?.conn as { remoteAddress?: string } | undefined;
  return conn?.remoteAddress;
}

/**
 * The aedes hooks that enforce the broker rules (README, "Message broker pair
 * and resilient clients"): every client authenticates as one service role or
 * as one member, and publishes and subscribes only where
 * `mayPublish`/`maySubscribe` (the same table as the Mosquitto acl_file)
 * allow. Every refusal is one counter and a warn line at most once per 10 s
 * per peer and reason, never a thrown error.
 */
export function createAccessControl(
  users: UserTable,
  log: Logger,
  counters: BrokerCounters,
  options: AccessControlOptions,
): AccessControl {
  // Keyed by the aedes Client object, so the account dies with the connection
  // and a client id taken over by a new connection [MQTT-3.1.4-2] starts afresh.
  const accounts = new WeakMap<Client, Account>();
  const refusals = new RateLimitedLog(log, options.clock);

  const authenticate: AccessHooks['authenticate'] = (client, username, password, done) => {
    const result = users.check(username, password);
    if (result.ok) {
      // check() accepts only a named account.
      accounts.set(client, { role: result.role, username: username as string });
      done(null, true);
      return;
    }
    // Not a platform account: a member's agent, if the password is the
    // credential of the member the user name names (one HMAC, cached). A
    // password longer than any credential (MQTT allows 64 KiB) is refused
    // before it is decoded or looked up.
    const member =
      result.reason === 'unknown user' &&
      options.members &&
      password !== undefined &&
      password.length <= MAX_CREDENTIAL_LENGTH
        ? verifyMemberAccount(options.members, username, password.toString('utf8'))
        : undefined;
    if (member) {
      counters.memberConnections += 1;
      accounts.set(client, { role: 'agent', username: member.memberId });
      done(null, true);
      return;
    }
    const { reason } = result;
    counters.authFailures += 1;
    const refusal = { clientId: client.id, username, reason };
    refusals.warn(peerOf(client), `connect ${reason}`, 'connect refused', {
      event: 'broker.connect_refused',
      ...refusal,
    });
    // Anonymous clients are refused outright (5); a failed login says 4, as
    // MQTT 3.1.1 §3.2.2.3 defines. aedes sends the CONNACK and then closes the
    // connection [MQTT-3.2.2-5].
    const returnCode = reason === 'anonymous' ? NOT_AUTHORIZED : BAD_USERNAME_OR_PASSWORD;
    const refused = new AccessRefusedError(`connect refused: ${reason}`, refusal);
    const error: AuthenticateError = Object.assign(refused, { returnCode });
    done(error, false);
  };

  const authorizePublish: AccessHooks['authorizePublish'] = (client, packet, done) => {
    if (client === null) {
      // Only aedes' will sweep passes no client: wills persisted by a broker
      // that has gone. Nobody can vouch for those, so only $SYS traffic passes.
      if (packet.topic.startsWith(SYS_PREFIX)) return done(null);
      counters.publishRefused += 1;
      const refusal = { clientId: null, topic: packet.topic, reason: 'no client' };
      refusals.warn(undefined, 'publish no client', 'publish refused', { event: 'broker.publish_refused', ...refusal });
      return done(new AccessRefusedError(`publish to ${packet.topic} refused: no client`, refusal));
    }
    const account = accounts.get(client);
    const role = account?.role;
    if (account !== undefined && mayPublish(account.role, packet.topic, account.username)) return done(null);
    counters.publishRefused += 1;
    const refusal = { clientId: client.id, role, username: account?.username, topic: packet.topic };
    // Keyed by the topic's first level too (bounded: at most 64 characters, and the log's key cap).
    const root = packet.topic.slice(0, 64).split('/', 1)[0] ?? '';
    refusals.warn(peerOf(client), `publish ${role ?? 'none'} ${root}`, 'publish refused', {
      event: 'broker.publish_refused',
      ...refusal,
    });
    // [MQTT-3.3.5-2] MQTT 3.1.1 cannot tell a client its PUBLISH was refused:
    // the server either acknowledges it as usual or closes the connection.
    // aedes closes it when this callback gets an error; Mosquitto acknowledges
    // and drops. Either way no subscriber receives the message.
    done(new AccessRefusedError(`publish to ${packet.topic} refused for role ${role ?? 'none'}`, refusal));
  };

  const authorizeSubscribe: AccessHooks['authorizeSubscribe'] = (client, subscription, done) => {
    const role = accounts.get(client)?.role;
    if (role !== undefined && maySubscribe(role, subscription.topic)) return done(null, subscription);
    counters.subscribeRefused += 1;
    refusals.warn(peerOf(client), `subscribe ${role ?? 'none'}`, 'subscribe refused', {
      event: 'broker.subscribe_refused',
      clientId: client.id,
      role,
      filter: subscription.topic,
    });
    // A null subscription makes aedes answer 0x80 (Failure, MQTT 3.1.1 §3.9.3)
    // for this filter only [MQTT-3.8.4-5]; the others and the connection stay.
    done(null, null);
  };

  return { authenticate, authorizePublish, authorizeSubscribe, roleOf: (client) => accounts.get(client)?.role };
}
