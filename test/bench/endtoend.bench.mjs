// End to end: the whole stack as `faultline stack up` runs it (its own
// folder and ports, default demo config with a 6 s fault timeout), one member
// killed -9 once it has run for a fault timeout, and the time to an active
// replacement, broken down from the services' own JSON logs: detect (kill →
// the autoscaler knows: the local infrastructure reports the instance gone,
// or the active SP's MemberFault, whichever first), decide (→ the
// autoscaler's spawn decision), spawn (→ processes up), activate
// (→ InstanceActivatedEvent seen by the autoscaler). Five kills; the goal
// (issue "Performance"): the median within the fault timeout + 1 s.
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from '@faultline/core';
import { SPAWNS } from '@faultline/nemesis';
import { freePort } from '@faultline/test-support';

export const description = 'kill a member → replacement active: detect / decide / spawn / activate';

const exec = promisify(execFile);
const CLI = path.join(REPO_ROOT, 'packages/cli/dist/main.js');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const KILLS = 5;

export async function run() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'faultline-bench-e2e-'));
  chmodSync(dir, 0o755);
  const ports = await Promise.all(Array.from({ length: 11 }, () => freePort()));
  const config = readFileSync(path.join(REPO_ROOT, 'infra/config/faultline.yaml'), 'utf8')
    .replace('embeddedPort: 5439', `embeddedPort: ${ports[0]}`)
    .replace('{ name: a, port: 1883, healthPort: 7921 }', `{ name: a, port: ${ports[1]}, healthPort: ${ports[9]} }`)
    .replace('{ name: b, port: 1884, healthPort: 7922 }', `{ name: b, port: ${ports[2]}, healthPort: ${ports[10]} }`)
    .replace(
      'thriftPort: 7611, syncPort: 7711, statusPort: 7811',
      `thriftPort: ${ports[3]}, syncPort: ${ports[4]}, statusPort: ${ports[5]}`,
    )
    .replace(
      'thriftPort: 7612, syncPort: 7712, statusPort: 7812',
      `thriftPort: ${ports[6]}, syncPort: ${ports[7]}, statusPort: ${ports[8]}`,
    )
    // One cluster at min = max, so only the fault path adds members.
    .replace(/clusters:[\s\S]*$/, 'clusters:\n  - { id: php, cartridgeType: php, min: 2, max: 2 }\n');
  writeFileSync(path.join(dir, 'faultline.yaml'), config);
  const FAULT_TIMEOUT_MS = Number(/faultTimeoutMs: (\d+)/.exec(config)?.[1]);
  // `stack status` exits 3 while the stack is degraded (a member killed on purpose): its output is the answer.
  const cli = async (...args) =>
    (
      await exec(process.execPath, [CLI, ...args], { cwd: dir }).catch((error) => {
        if (error.code === 3 && error.stdout !== undefined) return { stdout: error.stdout };
        throw error;
      })
    ).stdout.trim();
  const logs = (service) => {
    const file = path.join(dir, '.faultline/logs', `${service}.jsonl`);
    return existsSync(file)
      ? readFileSync(file, 'utf8')
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l))
      : [];
  };
  const at = (r) => Date.parse(r.timestamp);
  const stack = spawn(process.execPath, [CLI, 'stack', 'up', '--config', path.join(dir, 'faultline.yaml')], {
    cwd: dir,
    stdio: 'ignore',
  });
  const phases = [];
  let failed = false;
  try {
    const active = async () =>
      JSON.parse(await cli('stack', 'status', '--json')).clusters[0].members.filter((m) => m.state === 'Active').length;
    for (let i = 0; ; i++) {
      if (i > 600) throw new Error('the stack did not come up');
      try {
        if ((await active()) === 2) break;
      } catch {}
      await sleep(200);
    }
    for (let k = 0; k < KILLS; k++) {
      // A member killed within one fault timeout of its activation counts as a replacement that did not
      // work and backs the next spawn off (crash-loop protection): kill members that have settled.
      await sleep(FAULT_TIMEOUT_MS + 1_000);
      const calledAt = Date.now();
      const line = await cli('chaos', 'kill-member');
      const memberId = /member (\S+)/.exec(line)[1];
      // When the supervisor killed it (its log), not when the CLI returned: on a busy machine the CLI exits
      // after the autoscaler has noticed and replaced the member, whose records then came "before" the kill.
      const applied = logs('supervisor')
        .filter((r) => r.event === 'chaos.applied' && r.message.includes(memberId))
        .at(-1);
      const killedAt = applied ? Math.min(at(applied), Date.now()) : calledAt;
      let record;
      for (;;) {
        const auto = logs('autoscaler');
        // Who noticed first: the active SP's MemberFault, or the infrastructure (the instance exited).
        const fault = logs('sp-1')
          .concat(logs('sp-2'))
          .find((r) => r.event === 'cep.member_fault' && r.memberId === memberId && r.role === 'ACTIVE');
        const gone = auto.find(
          (r) =>
            r.event === 'autoscaler.action' &&
            r.memberId === memberId &&
            at(r) >= killedAt &&
            (r.action === 'MemberRemoved' || r.action === 'MemberTerminateAction'),
        );
        const noticed = [fault, gone].filter(Boolean).sort((a, b) => at(a) - at(b))[0];
        // Whichever rule fills the gap: on a loaded machine the members report a high load average, and the
        // scaling rule's ScaleUpAction (live 1 < max 2) can come before the minimum rule's turn. Counting only
        // MemberSpawnAction made a full run (its machine busy from the benchmarks before) miss a replacement.
        const decided = auto.find((r) => SPAWNS.has(r.action) && at(r) >= killedAt);
        const created =
          decided && auto.find((r) => r.event === 'autoscaler.member_created' && r.memberId === decided.memberId);
        const activated =
          decided && auto.find((r) => r.event === 'autoscaler.member_active' && r.memberId === decided.memberId);
        if (noticed && decided && created && activated) {
          record = {
            by: noticed === fault ? 'fault' : 'infrastructure',
            detect: at(noticed) - killedAt,
            decide: at(decided) - at(noticed),
            spawn: at(created) - at(decided),
            activate: at(activated) - at(created),
          };
          break;
        }
        if (Date.now() - killedAt > 60_000) {
          const since = auto.filter((r) => r.event === 'autoscaler.action' && at(r) >= killedAt);
          const said = since.map((r) => `${r.action} ${r.memberId ?? ''}: ${r.reason ?? ''}`).join('; ');
          throw new Error(
            `no replacement for ${memberId} within 60 s; the autoscaler since the kill: ${said || 'nothing'}`,
          );
        }
        await sleep(100);
      }
      phases.push(record);
    }
  } catch (error) {
    failed = true;
    throw error;
  } finally {
    await cli('stack', 'down').catch(() => {});
    await new Promise((resolve) => (stack.exitCode !== null ? resolve() : stack.once('exit', resolve)));
    // A failed run keeps the stack's folder (its logs) for a look, and says where.
    if (failed) console.error(`  endtoend: the stack's folder, its logs included, is kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
  const median = (key) => phases.map((p) => p[key]).sort((a, b) => a - b)[Math.floor(phases.length / 2)];
  const total = phases.map((p) => p.detect + p.decide + p.spawn + p.activate).sort((a, b) => a - b);
  const fmt = (x) => Math.round(x).toLocaleString('en-US');
  return [
    {
      name: `kill -9 a member → replacement active, median of ${phases.length} (fault timeout ${fmt(FAULT_TIMEOUT_MS)} ms, stats every 1 500 ms; all: ${total.map(fmt).join(', ')})`,
      value: fmt(total[Math.floor(total.length / 2)]),
      unit: 'ms',
      goal: `≤ ${fmt(FAULT_TIMEOUT_MS + 1_000)} ms`,
      met:
        phases.length === KILLS &&
        (total[Math.floor(total.length / 2)] ?? Number.POSITIVE_INFINITY) <= FAULT_TIMEOUT_MS + 1_000,
    },
    {
      name: `  detect: kill → the autoscaler knows (${phases.filter((p) => p.by === 'infrastructure').length} by the infrastructure reporting the instance gone, ${phases.filter((p) => p.by === 'fault').length} by a MemberFault of the active SP, whose timeout runs from the last stat)`,
      value: fmt(median('detect')),
      unit: 'ms',
    },
    { name: '  decide: → the autoscaler spawn decision', value: fmt(median('decide')), unit: 'ms' },
    { name: '  spawn: decision → member processes up', value: fmt(median('spawn')), unit: 'ms' },
    {
      name: '  activate: processes up → InstanceActivatedEvent at the autoscaler',
      value: fmt(median('activate')),
      unit: 'ms',
    },
  ];
}
