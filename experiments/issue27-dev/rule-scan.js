// The rule for a candidate default after the dark-patch development judges (docs/protocol.md section 12,
// step 4, written before the candidate's runs), applied to the records of experiments/issue27-dev/run-scan.sh
// (tag `scan`: robust-mf02-scan and robust-mf02 in one call, on the same model and clean draw):
// - on judges 109-111, clean seeds 1-3: robust-mf02-scan's mean excess ASR at most 2 points, worst at most 5;
// - on section 10's development judges 101-106 and 108, clean seeds 1-3: its mean ACC drop (but judge 102,
//   as in rule-mf02.js) at most robust-mf02's + 0.2, and its worst excess ASR (all seven) at most robust-mf02's + 1.
// usage (after `npx tsc -p .`): node experiments/issue27-dev/rule-scan.js
const { pick, summary, RUNS, judges, records } = require('./rule-runs');
const DARK = ['109', '110', '111'];
const root = records('issue27-scan');
const dark = summary(pick('robust-mf02-scan on 109-111', [['scan', 'vardefense:robust-mf02-scan']], DARK, root));
const darkBase = summary(pick('robust-mf02 on 109-111', [['scan', 'vardefense:robust-mf02']], DARK, root));
const cand = summary(pick('robust-mf02-scan', [['scan', 'vardefense:robust-mf02-scan']], judges, root));
const base = summary(pick('robust-mf02', [['scan', 'vardefense:robust-mf02']], judges, root));
for (const s of [dark, darkBase, cand, base]) console.log(JSON.stringify(s));
const complete = dark.runs === DARK.length * 3 && darkBase.runs === dark.runs && cand.runs === RUNS && base.runs === RUNS;
const conditions = {
  darkMean: dark.meanExcess <= 2, darkWorst: dark.worstExcess <= 5,
  accuracy: cand.meanDropNot102 <= base.meanDropNot102 + 0.2, worstExcess: cand.worstExcess <= base.worstExcess + 1,
};
console.log(JSON.stringify(conditions));
console.log(complete ? `rule: ${Object.values(conditions).every(Boolean) ? 'robust-mf02-scan becomes the default' : 'the default stays robust-mf02'}` : `rule: not every run is there yet (${dark.runs + cand.runs} of ${DARK.length * 3 + RUNS} runs of the candidate)`);
