// The rule for a second default switch (docs/protocol.md section 10, "A lighter penalty"), applied to
// the development records (figures in points): robust-mf02 against robust on judges 101-106 and 108, clean seeds 1-3.
// Seed 1 of robust on 101, 102 and 108 is the `ul-all-sf015` run, and seed 1 of robust-mf02 on 101-105
// and 108 is the `robust-mf02` tag's `vardefense:robust --set maxFraction=0.2` run (the same resolved
// options as the presets; both labelled by their preset and settings).
// usage (after `npx tsc -p .`): node experiments/issue27-dev/rule-mf02.js
const path = require('path');
const { collectRows, excessOf } = require('../../dist/src/report/summary');
const root = path.join(__dirname, '..', 'records', 'issue27-dev');
const rows = collectRows([root]);
const judges = ['101', '102', '103', '104', '105', '106', '108'];
const seeds = ['s1', 's2', 's3'];
/** the first row found, per (judge, seed), among [tag, defense] pairs in order */
const pick = (label, sources) => ({
  label,
  runs: judges.flatMap((j) => seeds.map((s) => {
    for (const [tag, defense] of sources) {
      const r = rows.find((x) => x.defense === defense && path.dirname(x.dir) === path.join(root, `j${j}`, tag, s));
      // in points (the rows hold fractions)
      if (r) return { judge: j, seed: s, acc: 100 * r.accAfter, drop: 100 * (r.accBefore - r.accAfter), asr: 100 * r.asrAfter, excess: 100 * excessOf(r) };
    }
    return { judge: j, seed: s, missing: true };
  })),
});
const round = (x) => Math.round(x * 1000) / 1000;
const summary = ({ label, runs }) => {
  const have = runs.filter((r) => !r.missing);
  const mean = (f) => have.reduce((a, r) => a + f(r), 0) / have.length;
  return { label, runs: have.length, missing: runs.filter((r) => r.missing).map((r) => `${r.judge}/${r.seed}`),
    meanDrop: round(mean((r) => r.drop)),
    // judge 102's original is a poor last iterate (72.45%) that every fine-tune lifts by 13-14 points:
    // the accuracy condition reads the other six judges
    meanDropNot102: round(have.filter((r) => r.judge !== '102').reduce((x, r) => x + r.drop, 0) / have.filter((r) => r.judge !== '102').length), worstDrop: round(Math.max(...have.map((r) => r.drop))), meanExcess: round(mean((r) => r.excess)),
    worstExcess: round(Math.max(...have.map((r) => r.excess))), meanAccMinusAsr: round(mean((r) => r.acc - r.asr)) };
};
const a = summary(pick('robust', [['robust', 'vardefense:robust'], ['ul-all-sf015', 'vardefense']]));
const c = summary(pick('robust-mf02', [['robust-mf02', 'vardefense:robust-mf02'], ['robust-mf02', 'vardefense:robust']]));
for (const s of [a, c]) console.log(JSON.stringify(s));
const complete = a.runs === 21 && c.runs === 21;
const switches = c.meanDropNot102 <= a.meanDropNot102 - 0.3 && c.worstExcess <= a.worstExcess + 1 && c.meanExcess <= a.meanExcess + 0.5;
console.log(complete ? `rule: ${switches ? 'robust-mf02 becomes the default' : 'the default stays robust'}` : 'rule: not all 21 runs of each are there yet');
// Added after the rule was applied (not part of it): development judges 103 and 105 were lost with a
// machine before robust-mf02's seeds 2-3 ran on them and were retrained by the same recipe (another
// model: ACC 90.88 / 90.97 against 90.93 / 91.07), so robust-mf02's seeds 2-3 there ran on the retrained
// models while robust's ran on the originals. `robust` was rerun on the retrained models (tag
// `robust-retrained`); the same summary with those runs in place of robust's compares like with like.
const p = summary(pick('robust (103, 105 s2-3 on the retrained models)', [['robust-retrained', 'vardefense:robust'], ['robust', 'vardefense:robust'], ['ul-all-sf015', 'vardefense']]));
console.log(JSON.stringify(p));
const paired = p.runs === 21 && c.meanDropNot102 <= p.meanDropNot102 - 0.3 && c.worstExcess <= p.worstExcess + 1 && c.meanExcess <= p.meanExcess + 0.5;
console.log(`paired check: the same conditions against it ${paired ? 'hold' : 'do not hold'}`);
