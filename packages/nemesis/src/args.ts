export interface NemesisArgs {
  /** Length of the fault schedule in minutes (decimals allowed). */
  minutes: number;
  /** undefined: a random seed, printed. */
  seed: string | undefined;
  brokerKind: 'aedes' | 'mosquitto';
  /** Keep the stack's folder (logs, database, report) even when nothing was found. */
  keep: boolean;
  clusters: 1 | 2;
  help: boolean;
}

export const USAGE = `npm run nemesis -- [--minutes N] [--seed S] [--broker-kind aedes|mosquitto] [--clusters 1|2] [--keep]

Starts a stack of its own (faultline stack up) in a fresh temporary folder, breaks it at random
for N minutes from seed S (printed; the same seed draws the same schedule), lets it heal, then
checks the autoscaler's decisions, the registry and the process table against the invariants.
Exits 0 when nothing is violated, 1 on violations, 2 on a bad argument, 3 when the run itself
failed (the stack did not start), 130 on Ctrl-C. The stack is always stopped.

  --minutes N        length of the fault schedule (default 3); the run adds start-up, the quiet
                     period and the stop
  --seed S           any string (default: a random number)
  --broker-kind K    aedes (default) or mosquitto
  --clusters C       1: web (min = max = 3); 2: also api (min = max = 2). Default 1
  --keep             keep the stack's folder (kept anyway when a violation is found)`;

export class ArgsError extends Error {}

export function parseArgs(argv: readonly string[]): NemesisArgs {
  const out: NemesisArgs = { minutes: 3, seed: undefined, brokerKind: 'aedes', keep: false, clusters: 1, help: false };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i] as string;
    const [name, inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    const value = (): string => {
      if (inline !== undefined) return inline;
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new ArgsError(`${name} needs a value`);
      i += 1;
      return next;
    };
    switch (name) {
      case '--minutes': {
        const text = value();
        const minutes = Number(text);
        if (!/^\d+(\.\d+)?$/.test(text) || !(minutes > 0 && minutes <= 24 * 60)) {
          throw new ArgsError(`--minutes must be a number > 0 (minutes, up to a day); got ${JSON.stringify(text)}`);
        }
        out.minutes = minutes;
        break;
      }
      case '--seed': {
        const seed = value();
        if (!/^[\w.:-]{1,64}$/.test(seed))
          throw new ArgsError('--seed must be 1–64 letters, digits, ".", ":", "_", "-"');
        out.seed = seed;
        break;
      }
      case '--broker-kind': {
        const kind = value();
        if (kind !== 'aedes' && kind !== 'mosquitto') throw new ArgsError('--broker-kind must be aedes or mosquitto');
        out.brokerKind = kind;
        break;
      }
      case '--clusters': {
        const c = value();
        if (c !== '1' && c !== '2') throw new ArgsError('--clusters must be 1 or 2');
        out.clusters = c === '1' ? 1 : 2;
        break;
      }
      case '--keep':
        out.keep = true;
        break;
      case '--help':
      case '-h':
        out.help = true;
        break;
      default:
        throw new ArgsError(`unknown argument ${JSON.stringify(arg.slice(0, 64))}`);
    }
  }
  return out;
}
