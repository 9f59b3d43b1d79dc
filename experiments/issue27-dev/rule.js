// The rule for the default (docs/protocol.md section 10, issue 27 item 5), applied to the development
// records: robust against bn-distill-eval (the `vardefense` rows of tag `base`) on judges 101-106 and 108,
// clean seeds 1-3. Seed 1 of robust on 101, 102 and 108 is the `ul-all-sf015` run (the same resolved options).
// usage (after `npx tsc -p .`): node experiments/issue27-dev/rule.js
const path = require('path');
const { collectRows, excessOf } = require('../../dist/src/report/summary');
const root = path.join(__dirname, '..', 'records', 'issue27-dev');
const rows = collectRows([root]);
const judges = ['101', '102', '103', '104', '105', '106', '108'];
const seeds = ['s1', 's2', 's3'];
const pick = (label, tags, defense) => {
  const out = [];
  for (const j of judges) for (const s of seeds) {
    const r = rows.find((x) => x.defense === defense && tags.some((t) => path.dirname(x.dir) === path.join(root, `j${j}`, t, s)));
    out.push(r ? { judge: j, seed: s, acc: r.accAfter, drop: r.accBefore - r.accAfter, asr: r.asrAfter, excess: excessOf(r) } : { judge: j, seed: s, missing: true });
  }
  return { label, runs: out };
};
const summary = ({ label, runs }) => {
  const have = runs.filter((r) => !r.missing);
  const mean = (f) => have.reduce((a, r) => a + f(r), 0) / have.length;
  return { label, runs: have.length, missing: runs.filter((r) => r.missing).map((r) => `${r.judge}/${r.seed}`),
    worstExcess: Math.max(...have.map((r) => r.excess)), meanAccMinusAsr: mean((r) => r.acc - r.asr), meanExcess: mean((r) => r.excess), meanDrop: mean((r) => r.drop),
    worstDrop: Math.max(...have.map((r) => r.drop)) };
};
// the ul-all-sf015 rows are labelled vardefense (with settings): they fill robust's seed 1 where it has no run of its own
const ul = pick('ul', ['ul-all-sf015'], 'vardefense');
const rob = pick('robust', ['robust'], 'vardefense:robust');
rob.runs = rob.runs.map((r, i) => (r.missing && !ul.runs[i].missing ? ul.runs[i] : r));
const a = summary(rob);
const b = summary(pick('bn-distill-eval', ['base'], 'vardefense'));
for (const s of [a, b]) console.log(JSON.stringify(s));
const switches = a.runs === 21 && b.runs === 21 && a.worstExcess < b.worstExcess && a.meanAccMinusAsr > b.meanAccMinusAsr;
console.log(a.runs === 21 && b.runs === 21 ? `rule: ${switches ? 'robust becomes the default' : 'the default stays bn-distill-eval'}` : 'rule: not all 21 runs of each are there yet');
