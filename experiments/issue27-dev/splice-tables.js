// Writes the tables of the issue 27 records into docs/results.md (between the markers), as
// test/experiments/issue27-records.test.ts checks: the development runs, the final grid once its
// records exist, and issue 28's torchvision zoo (the same goal tables). usage (after `npx tsc -p .`): node experiments/issue27-dev/splice-tables.js
const fs = require('fs');
const path = require('path');
const { aggregateText } = require('../../dist/src/report/aggregate');
const { standingsText } = require('../../dist/src/report/compare');
const { collectRows } = require('../../dist/src/report/summary');
const { readResults } = require('../../dist/src/experiments/runner');
const { goalTables } = require('../issue27-final/goals');
const root = path.join(__dirname, '..', '..');
const records = (name) => path.join(root, 'experiments', 'records', name);
const judges = (name) => path.join(root, 'experiments', 'judges', `${name}.json`);

/** The goal tables (by defense, then per judge) of a records folder's runs under `tag`, against a judge list. */
const goalText = (recordsName, judgesName, tag, ...base) => {
  const g = goalTables(records(recordsName), judges(judgesName), tag, ...base);
  return `${g.byDefense}\n\n${g.perJudge}`;
};

/** Every generated section: marker name -> text. */
function sections() {
  const out = {};
  const dev = collectRows([records('issue27-dev')]);
  out['issue27-standings'] = standingsText(dev, 'markdown');
  out['issue27-aggregate'] = aggregateText(dev, 'markdown');
  out['issue27-dev-goals'] = goalText('issue27-dev', 'dev', 'robust');
  // docs/protocol.md section 12: development judges 109-111 (a dark patch over the object), clean seed 1
  if (fs.existsSync(records('issue27-sec12'))) out['issue27-sec12'] = aggregateText(collectRows([records('issue27-sec12')]), 'markdown');
  // section 12 steps 3-4: the frozen candidate robust-mf02-scan beside robust-mf02 (and its control), clean seeds 1-3
  if (fs.existsSync(records('issue27-scan'))) out['issue27-scan'] = goalText('issue27-scan', 'dev', 'scan');
  if (fs.existsSync(records('issue27-final'))) {
    out['issue27-final-goals'] = goalText('issue27-final', 'final', 'grid');
    // the second default (robust-mf02) against robust on the same model and draw, by the build of the rule's commit
    out['issue27-final-mf02'] = goalText('issue27-final', 'final', 'grid-mf02');
    out['issue27-final-ablations'] = goalText('issue27-final', 'final', 'ablations-mf02');
    // section 12, step 4b: the gated candidate robust-mf02-gate beside robust-mf02 on the same model and draw
    out['issue27-final-gate'] = goalText('issue27-final', 'final', 'grid-gate');
  }
  // issue 28's torchvision zoo (scripts/judges/zoo.py), defended by the default and FT
  if (fs.existsSync(records('issue28-zoo'))) out['issue28-zoo'] = goalText('issue28-zoo', 'zoo', 'zoo', 'ft');
  // issue 29: the default defense of a PyTorch-trained judge in fp32 and bf16 on the same clean draws
  if (fs.existsSync(records('issue29-bf16'))) out['issue29-bf16-parity'] = precisionTable(collectRows([records('issue29-bf16')]));
  // issue 29: the toolkit's own models trained and defended in fp32 and in bf16 (train-parity.yaml)
  const trained = ['fp32', 'bf16'].map((p) => readResults(path.join(records('issue29-bf16-train'), p)));
  if (trained.every((rows) => rows.length > 0)) out['issue29-bf16-train'] = trainedTable(...trained);
  return out;
}

/**
 * fp32 against bf16 per judge and clean seed (records <judge>/<precision>/s<seed>/<method>), and per judge
 * fp32's spread over the clean seeds next to the largest bf16 - fp32 difference on the same draw.
 */
function precisionTable(rows) {
  const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length;
  const part = (r, up) => path.basename(path.dirname(up === 1 ? r.dir : path.dirname(r.dir)));
  const judge = (r) => path.basename(path.dirname(path.dirname(path.dirname(r.dir))));
  const key = (r) => `${judge(r)} ${r.defense} ${part(r, 1)}`;
  const lines = ['| judge | defense | clean seed | ACC before | fp32 ACC / ASR after | bf16 ACC / ASR after | bf16 - fp32 ACC / ASR (points) | fp32 / bf16 seconds |', '|---|---|---|---|---|---|---|---|'];
  const fp = rows.filter((r) => part(r, 2) === 'fp32');
  const spreads = [];
  for (const j of [...new Set(fp.map(judge))]) {
    const mine = fp.filter((r) => judge(r) === j);
    const pairs = [];
    for (const a of mine) {
      const b = rows.find((r) => part(r, 2) === 'bf16' && key(r) === key(a));
      if (!b) continue;
      pairs.push([a, b]);
      lines.push(`| ${j} | ${a.defense} | ${part(a, 1).slice(1)} | ${pts(a.accBefore)} | ${pts(a.accAfter)} / ${pts(a.asrAfter)} | ${pts(b.accAfter)} / ${pts(b.asrAfter)} | ` +
        `${pts(b.accAfter - a.accAfter)} / ${pts(b.asrAfter - a.asrAfter)} | ${a.seconds.toFixed(0)} / ${b.seconds.toFixed(0)} |`);
    }
    if (pairs.length === 0) continue;
    const largest = (k) => pts(Math.max(...pairs.map(([a, b]) => Math.abs(b[k] - a[k]))));
    const spread = (f) => { const v = mine.map(f); return pts(Math.max(...v) - Math.min(...v)); };
    spreads.push(`${j}: fp32's spread over the clean seeds (max - min) ACC ${spread((r) => r.accAfter)}, ASR ${spread((r) => r.asrAfter)} points; ` +
      `largest |bf16 - fp32| ACC ${largest('accAfter')}, ASR ${largest('asrAfter')} points; ` +
      `means over the seeds fp32 ${pts(mean(pairs.map((p) => p[0].accAfter)))} / ${pts(mean(pairs.map((p) => p[0].asrAfter)))}, bf16 ${pts(mean(pairs.map((p) => p[1].accAfter)))} / ${pts(mean(pairs.map((p) => p[1].asrAfter)))} (ACC / ASR).`);
  }
  return [...lines, '', ...spreads.map((s) => `- ${s}`)].join('\n');
}

/**
 * Models trained and defended in fp32 and in bf16 (results.jsonl rows of the same experiment, one per
 * precision): per attack and seed the trained model's ACC / ASR and the defended one's, then per attack
 * each precision's range over the seeds.
 */
function trainedTable(fp, bf) {
  const lines = ['| attack | seed | fp32 trained ACC / ASR | bf16 trained ACC / ASR | fp32 defended ACC / ASR | bf16 defended ACC / ASR | fp32 / bf16 defense seconds |', '|---|---|---|---|---|---|---|'];
  const ranges = [];
  for (const attack of [...new Set(fp.map((r) => r.attack))]) {
    const a = fp.filter((r) => r.attack === attack).sort((x, y) => x.seed - y.seed);
    const b = bf.filter((r) => r.attack === attack);
    if (b.length === 0) continue; // no bf16 cell of this attack yet: nothing to set beside fp32
    for (const r of a) {
      const q = b.find((x) => x.seed === r.seed);
      if (q) lines.push(`| ${attack} | ${r.seed} | ${pts(r.accBefore)} / ${pts(r.asrBefore)} | ${pts(q.accBefore)} / ${pts(q.asrBefore)} | ${pts(r.accAfter)} / ${pts(r.asrAfter)} | ${pts(q.accAfter)} / ${pts(q.asrAfter)} | ${r.seconds.toFixed(0)} / ${q.seconds.toFixed(0)} |`);
    }
    const range = (rows, k) => { const v = rows.map((r) => r[k]); return `${pts(Math.min(...v))}-${pts(Math.max(...v))}`; };
    for (const [k, what] of [['accBefore', 'trained ACC'], ['asrBefore', 'trained ASR'], ['accAfter', 'defended ACC'], ['asrAfter', 'defended ASR']])
      ranges.push(`${attack}, ${what}: fp32 ${range(a, k)}, bf16 ${range(b, k)}`);
  }
  return [...lines, '', 'Range over the seeds (min-max, %):', '', ...ranges.map((s) => `- ${s}`)].join('\n');
}

/** a fraction as percent with 2 decimals */
const pts = (x) => (100 * x).toFixed(2);

const put = (text, name, body) => {
  const a = `<!-- ${name}: generated -->`, b = `<!-- ${name}: end -->`;
  const i = text.indexOf(a), j = text.indexOf(b);
  if (i < 0 || j < 0) throw new Error(`docs/results.md: no markers for ${name}`);
  return text.slice(0, i + a.length) + '\n' + body.trim() + '\n' + text.slice(j);
};

module.exports = { sections };

if (require.main === module) {
  const file = path.join(root, 'docs', 'results.md');
  let out = fs.readFileSync(file, 'utf8');
  for (const [name, body] of Object.entries(sections())) out = put(out, name, body);
  fs.writeFileSync(file + '.tmp', out);
  fs.renameSync(file + '.tmp', file);
  console.log(`${Object.keys(sections()).join(', ')} written`);
}
