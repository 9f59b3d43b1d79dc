// The rule for a second default switch (docs/protocol.md section 10, "A lighter penalty"), applied to
// the development records (figures in points): robust-mf02 against robust on judges 101-106 and 108, clean seeds 1-3.
// Seed 1 of robust on 101, 102 and 108 is the `ul-all-sf015` run, and seed 1 of robust-mf02 on 101-105
// and 108 is the `robust-mf02` tag's `vardefense:robust --set maxFraction=0.2` run (the same resolved
// options as the presets; both labelled by their preset and settings).
// usage (after `npx tsc -p .`): node experiments/issue27-dev/rule-mf02.js
const { pick, summary, RUNS } = require('./rule-runs');
const ROBUST = [['robust', 'vardefense:robust'], ['ul-all-sf015', 'vardefense']];
const a = summary(pick('robust', ROBUST));
const c = summary(pick('robust-mf02', [['robust-mf02', 'vardefense:robust-mf02'], ['robust-mf02', 'vardefense:robust']]));
for (const s of [a, c]) console.log(JSON.stringify(s));
const holds = (base) => c.meanDropNot102 <= base.meanDropNot102 - 0.3 && c.worstExcess <= base.worstExcess + 1 && c.meanExcess <= base.meanExcess + 0.5;
const complete = a.runs === RUNS && c.runs === RUNS;
console.log(complete ? `rule: ${holds(a) ? 'robust-mf02 becomes the default' : 'the default stays robust'}` : `rule: not all ${RUNS} runs of each are there yet`);
// Added after the rule was applied (not part of it): development judges 103 and 105 were lost with a
// machine before robust-mf02's seeds 2-3 ran on them and were retrained by the same recipe (another
// model: ACC 90.88 / 90.97 against 90.93 / 91.07), so robust-mf02's seeds 2-3 there ran on the retrained
// models while robust's ran on the originals. `robust` was rerun on the retrained models (tag
// `robust-retrained`); the same summary with those runs in place of robust's compares like with like.
const p = summary(pick('robust (103, 105 s2-3 on the retrained models)', [['robust-retrained', 'vardefense:robust'], ...ROBUST]));
console.log(JSON.stringify(p));
console.log(`paired check: the same conditions against it ${p.runs === RUNS && holds(p) ? 'hold' : 'do not hold'}`);
