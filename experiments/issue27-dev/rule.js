// The rule for the default (docs/protocol.md section 10, issue 27 item 5), applied to the development
// records: robust against bn-distill-eval (the `vardefense` rows of tag `base`) on judges 101-106 and 108,
// clean seeds 1-3. Seed 1 of robust on 101, 102 and 108 is the `ul-all-sf015` run (the same resolved options,
// labelled vardefense with its settings). Figures in points.
// usage (after `npx tsc -p .`): node experiments/issue27-dev/rule.js
const { pick, summary, RUNS } = require('./rule-runs');
const a = summary(pick('robust', [['robust', 'vardefense:robust'], ['ul-all-sf015', 'vardefense']]));
const b = summary(pick('bn-distill-eval', [['base', 'vardefense']]));
for (const s of [a, b]) console.log(JSON.stringify(s));
const switches = a.runs === RUNS && b.runs === RUNS && a.worstExcess < b.worstExcess && a.meanAccMinusAsr > b.meanAccMinusAsr;
console.log(a.runs === RUNS && b.runs === RUNS ? `rule: ${switches ? 'robust becomes the default' : 'the default stays bn-distill-eval'}` : `rule: not all ${RUNS} runs of each are there yet`);
