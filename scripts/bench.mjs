#!/usr/bin/env node
// `npm run bench [-- NAME ...]`: runs the benchmarks of test/bench and writes
// bench/results/latest.json and latest.md. Each figure stands beside its
// baseline (measured in the same run) and its goal, so a regression shows.
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = path.join(root, 'test/bench');
const all = readdirSync(benchDir)
  .filter((file) => file.endsWith('.bench.mjs'))
  .map((file) => file.replace('.bench.mjs', ''))
  .sort();
const wanted = process.argv.slice(2).filter((arg) => !arg.startsWith('-'));
const unknown = wanted.filter((name) => !all.includes(name));
if (unknown.length > 0) {
  console.error(`bench: unknown benchmark ${unknown.join(', ')}; known: ${all.join(', ')}`);
  process.exit(2);
}
const names = wanted.length > 0 ? wanted : all;
const machine = { cores: os.cpus().length, cpu: os.cpus()[0]?.model ?? 'unknown', node: process.version };
console.log(`bench: ${names.join(', ')} on ${machine.cores} cores (${machine.cpu}), Node ${machine.node}`);

const results = [];
for (const name of names) {
  const mod = await import(pathToFileURL(path.join(benchDir, `${name}.bench.mjs`)).href);
  const started = performance.now();
  const figures = await mod.run();
  results.push({ name, description: mod.description, seconds: (performance.now() - started) / 1000, figures });
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
  `Measured ${new Date().toISOString().slice(0, 10)} on ${machine.cores} cores (${machine.cpu}), Node ${machine.node}.`,
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
// A partial run (`-- NAME`) writes its own files and leaves the full report alone.
const base = wanted.length > 0 ? `partial-${names.join('-')}` : 'latest';
writeFileSync(
  path.join(outDir, `${base}.json`),
  `${JSON.stringify({ machine, date: new Date().toISOString(), results }, null, 2)}\n`,
);
writeFileSync(path.join(outDir, `${base}.md`), md);
console.log(`bench: wrote bench/results/${base}.json and ${base}.md`);
