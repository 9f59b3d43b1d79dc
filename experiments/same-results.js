#!/usr/bin/env node
// Reproducibility check: the cells two experiment outputs have in common must have identical numbers.
// usage: node experiments/same-results.js <out-a> <out-b>     (exit 1 if any shared cell differs)
const fs = require('fs');
const path = require('path');

function results(dir) {
  const file = path.join(dir, 'results.jsonl');
  if (!fs.existsSync(file)) throw new Error(`${file}: no such file`);
  return new Map(fs.readFileSync(file, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l)).map((r) => [r.cell, r]));
}

const [a, b] = process.argv.slice(2);
if (!a || !b) { console.error('usage: node experiments/same-results.js <out-a> <out-b>'); process.exit(2); }
const ra = results(a), rb = results(b);
const keys = ['accBefore', 'asrBefore', 'accAfter', 'asrAfter', 'raAfter', 'floorAfter'];
let shared = 0, differ = 0;
for (const [cell, x] of ra) {
  const y = rb.get(cell);
  if (!y) continue;
  shared++;
  const diff = keys.filter((k) => x[k] !== y[k]);
  if (diff.length) differ++;
  const label = `${x.dataset} ${x.attack} seed ${x.seed} ${x.preset === 'default' ? x.method : `${x.method}:${x.preset}`}`;
  console.log(`${diff.length ? 'DIFFERENT' : 'identical'}  ${label}${diff.map((k) => `  ${k} ${x[k]} vs ${y[k]}`).join('')}`);
}
console.log(`${shared} shared cells, ${shared - differ} identical, ${differ} different`);
process.exit(differ || !shared ? 1 : 0);
