#!/usr/bin/env node
// `npm run stack`: starts the full Faultline stack through the `faultline` CLI.
// Until every service of the stack exists, it says which ones are missing and
// exits non-zero instead of starting half a platform.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const needed = [
  ['broker', 'MQTT broker pair (aedes)'],
  ['messaging', 'resilient MQTT publisher and subscriber'],
  ['coordination', 'PostgreSQL heartbeats and leader lease'],
  ['stream-processor', 'stream processor active/passive pair'],
  ['cep', 'CEP monitor (MemberFault detection)'],
  ['cloud-controller', 'cloud controller and member workload'],
  ['cartridge-agent', 'cartridge agent'],
  ['autoscaler', 'autoscaler'],
  ['cli', 'the faultline command (stack supervisor)'],
];
const missing = needed.filter(([name]) => !existsSync(path.join(root, 'packages', name, 'src')));
if (missing.length > 0) {
  console.error('faultline: the full stack cannot start yet; these parts are not built:');
  for (const [name, what] of missing) console.error(`  - packages/${name}: ${what}`);
  console.error('See the README ("Status") for what works today; `npm test` runs what exists.');
  process.exit(1);
}
const cli = path.join(root, 'packages/cli/dist/main.js');
const { spawn } = await import('node:child_process');
const child = spawn(process.execPath, [cli, 'stack', 'up', ...process.argv.slice(2)], { stdio: 'inherit' });
// Ctrl-C reaches the whole foreground process group; forward SIGTERM ourselves.
process.on('SIGINT', () => {});
process.on('SIGTERM', () => child.kill('SIGTERM'));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
