// The runs a default-switch rule reads (experiments/issue27-dev/rule.js, rule-mf02.js): one per development
// judge 101-106, 108 and clean seed 1-3, taken from the first [tag, defense] source that has it, and their
// summary in points (the rows hold fractions). Needs `npx tsc -p .` first.
const path = require('path');
const { collectRows, excessOf } = require('../../dist/src/report/summary');
const records = (name) => path.join(__dirname, '..', 'records', name);
const devRoot = records('issue27-dev');
const loaded = new Map();
const rowsOf = (root) => { if (!loaded.has(root)) loaded.set(root, collectRows([root])); return loaded.get(root); };
const judges = ['101', '102', '103', '104', '105', '106', '108'];
const seeds = ['s1', 's2', 's3'];
const RUNS = judges.length * seeds.length;

/**
 * The first row found, per (judge, seed), among [tag, defense] sources in order (over `among`: judges
 * 101-106, 108 by default; from the development records, or `root`'s).
 */
const pick = (label, sources, among = judges, root = devRoot) => ({
  label,
  runs: among.flatMap((j) => seeds.map((s) => {
    const rows = rowsOf(root);
    for (const [tag, defense] of sources) {
      const r = rows.find((x) => x.defense === defense && path.dirname(x.dir) === path.join(root, `j${j}`, tag, s));
      if (r) return { judge: j, seed: s, acc: 100 * r.accAfter, drop: 100 * (r.accBefore - r.accAfter), asr: 100 * r.asrAfter, excess: 100 * excessOf(r) };
    }
    return { judge: j, seed: s, missing: true };
  })),
});

const round = (x) => Math.round(x * 1000) / 1000;
/** Means and worst cases over the runs found, in points. */
const summary = ({ label, runs }) => {
  const have = runs.filter((r) => !r.missing);
  const mean = (rs, f) => rs.reduce((a, r) => a + f(r), 0) / rs.length;
  // judge 102's original is a poor last iterate (72.45%) that every fine-tune lifts by 13-14 points:
  // rule-mf02's accuracy condition reads the other six judges
  const not102 = have.filter((r) => r.judge !== '102');
  return { label, runs: have.length, missing: runs.filter((r) => r.missing).map((r) => `${r.judge}/${r.seed}`),
    meanDrop: round(mean(have, (r) => r.drop)), meanDropNot102: round(mean(not102, (r) => r.drop)), worstDrop: round(Math.max(...have.map((r) => r.drop))),
    meanExcess: round(mean(have, (r) => r.excess)), worstExcess: round(Math.max(...have.map((r) => r.excess))), meanAccMinusAsr: round(mean(have, (r) => r.acc - r.asr)) };
};

module.exports = { pick, summary, RUNS, judges, records };
