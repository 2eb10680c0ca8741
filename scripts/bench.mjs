#!/usr/bin/env node
// `npm run bench [-- NAME ...] [-- --members N]`: runs the benchmarks of
// test/bench and writes bench/results/latest.json and latest.md. Each figure
// stands beside its baseline (measured in the same run) and its goal, so a
// regression shows.
//
// Options (passed to every benchmark's `run(options)`; one that has no use for
// an option ignores it):
//   --members N   how many members the benchmarks that scale with it watch
//                 (scale: one SP pair at N members, default 100 000;
//                 detection: a case at N beside 1 000 and 10 000)
// A run with any NAME or option is partial: it writes partial-*.json/.md and
// leaves the full report alone.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = path.join(root, 'test/bench');
const all = readdirSync(benchDir)
  .filter((file) => file.endsWith('.bench.mjs'))
  .map((file) => file.replace('.bench.mjs', ''))
  .sort();
const usage = `usage: npm run bench [-- [--members N] [NAME ...]]; known benchmarks: ${all.join(', ')}`;

let args;
try {
  args = parseArgs({
    args: process.argv.slice(2),
    options: { members: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  });
} catch (error) {
  console.error(`bench: ${error.message}\n${usage}`);
  process.exit(2);
}
if (args.values.help) {
  console.log(usage);
  process.exit(0);
}
/** What each benchmark's run() gets: only the options given. */
const options = {};
if (args.values.members !== undefined) {
  const members = Number(args.values.members.replaceAll('_', ''));
  if (!Number.isSafeInteger(members) || members < 1) {
    console.error(`bench: --members must be a positive integer, not ${args.values.members}\n${usage}`);
    process.exit(2);
  }
  options.members = members;
}
const wanted = args.positionals;
const unknown = wanted.filter((name) => !all.includes(name));
if (unknown.length > 0) {
  console.error(`bench: unknown benchmark ${unknown.join(', ')}; known: ${all.join(', ')}`);
  process.exit(2);
}
const names = wanted.length > 0 ? [...new Set(wanted)] : all;
const machine = { cores: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', node: process.version };
const given = Object.entries(options).map(([key, value]) => `--${key} ${value}`);
console.log(
  `bench: ${names.join(', ')} on ${machine.cores} cores (${machine.cpu}), Node ${machine.node}` +
    (given.length > 0 ? ` (${given.join(' ')})` : ''),
);

const results = [];
let failed = 0;
for (const name of names) {
  const started = performance.now();
  let description;
  let figures;
  try {
    const mod = await import(pathToFileURL(path.join(benchDir, `${name}.bench.mjs`)).href);
    description = mod.description;
    figures = await mod.run({ ...options });
  } catch (error) {
    // One benchmark that throws is a failed figure, not the end of the whole run.
    failed += 1;
    console.error(`  ${name}: ${error?.stack ?? error}`);
    const reason = String(error?.message ?? error)
      .split('\n')[0]
      .slice(0, 300);
    figures = [{ name: `the benchmark failed: ${reason}`, value: '–', unit: '', goal: 'runs', met: false }];
  }
  results.push({ name, description, seconds: (performance.now() - started) / 1000, figures });
  for (const f of figures) {
    const verdict = f.met === undefined ? '' : f.met ? '  [goal met]' : '  [GOAL MISSED]';
    console.log(
      `  ${name} · ${f.name}: ${f.value} ${f.unit}` +
        (f.baseline ? `  (baseline ${f.baseline.name}: ${f.baseline.value} ${f.unit})` : '') +
        (f.goal ? `  goal ${f.goal}` : '') +
        verdict,
    );
  }
}

const md = [
  `Measured ${new Date().toISOString().slice(0, 10)} on ${machine.cores} cores (${machine.cpu}), Node ${machine.node}` +
    (given.length > 0 ? `, with ${given.join(' ')}.` : '.'),
  '',
  '| benchmark | figure | value | baseline (same run) | goal | met |',
  '|---|---|---|---|---|---|',
  ...results.flatMap((r) =>
    r.figures.map(
      (f) =>
        `| ${r.name} | ${f.name} | ${f.value} ${f.unit} | ${f.baseline ? `${f.baseline.name}: ${f.baseline.value} ${f.unit}` : '–'} | ${f.goal ?? '–'} | ${f.met === undefined ? '–' : f.met ? 'yes' : '**no**'} |`,
    ),
  ),
  '',
].join('\n');
const outDir = path.join(root, 'bench/results');
mkdirSync(outDir, { recursive: true });
// A partial run (`-- NAME`, or any option) writes its own files and leaves the full report alone.
const partial = wanted.length > 0 || given.length > 0;
const base = partial
  ? ['partial', ...names, ...Object.entries(options).map(([key, value]) => `${key}-${value}`)].join('-')
  : 'latest';
writeFileSync(
  path.join(outDir, `${base}.json`),
  `${JSON.stringify({ machine, date: new Date().toISOString(), options, results }, null, 2)}\n`,
);
writeFileSync(path.join(outDir, `${base}.md`), md);
console.log(`bench: wrote bench/results/${base}.json and ${base}.md`);
if (failed > 0) {
  console.error(`bench: ${failed} benchmark(s) failed; their figures say why`);
  process.exitCode = 1;
}
