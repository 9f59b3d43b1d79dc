// The rule for the gated candidate `robust-mf02-gate` (docs/protocol.md section 12, step 4b: written after
// robust-mf02-scan failed rule-scan.js on judge 108's clean seeds 1-2 and before the runs of judges 101, 102,
// 105 and 108's seed 3 were there). The gate's two branches are the two presets of experiments/issue27-dev/
// run-scan.sh, run in one call on the same model and draw: where the scan's best square sends at least half of
// the other classes' images to its class (scanGate 0.5) robust-mf02-gate's run is robust-mf02-scan's, elsewhere
// robust-mf02's, to the last digit (test/defenses/square-scan.test.ts, "the scan's gate"; checked on judges 108
// and 109, clean seed 1: docs/results.md). So each run is read from the records of run-scan.sh (tag `scan`):
// the branch the gate takes is the scan's own success in robust-mf02-scan's report. The conditions are
// rule-scan.js's:
// - on judges 109-111, clean seeds 1-3: mean excess ASR at most 2 points, worst at most 5;
// - on section 10's development judges 101-106 and 108: mean ACC drop (but 102) at most robust-mf02's + 0.2,
//   worst excess ASR (all seven) at most robust-mf02's + 1.
// usage (after `npx tsc -p .`): node experiments/issue27-dev/rule-gate.js
const fs = require('fs');
const path = require('path');
const { pick, summary, RUNS, judges, records } = require('./rule-runs');
const DARK = ['109', '110', '111'];
const GATE = 0.5;
const root = records('issue27-scan');
/** The scan's best square's share on a run, from robust-mf02-scan's report (null where the run is missing). */
const scanShare = (j, s) => {
  const file = path.join(root, `j${j}`, 'scan', s, 'vardefense-robust-mf02-scan', 'report.json');
  if (!fs.existsSync(file)) return null;
  const scan = JSON.parse(fs.readFileSync(file, 'utf8')).report.searches.find((x) => x.start === 'squares');
  return scan.triggers[scan.suspect].success;
};
/** robust-mf02-gate's runs: robust-mf02-scan's where the scan's best square reaches the gate, else robust-mf02's. */
const gated = (label, among) => {
  const open = pick(label, [['scan', 'vardefense:robust-mf02-scan']], among, root).runs;
  const closed = pick(label, [['scan', 'vardefense:robust-mf02']], among, root).runs;
  return { label, runs: open.map((r, i) => {
    const success = scanShare(r.judge, r.seed), run = success >= GATE ? r : closed[i];
    return success === null || run.missing ? { judge: r.judge, seed: r.seed, missing: true } : { ...run, branch: run === r ? 'robust-mf02-scan' : 'robust-mf02', success };
  }) };
};
const darkRuns = gated('robust-mf02-gate on 109-111', DARK), candRuns = gated('robust-mf02-gate', judges);
for (const r of [...darkRuns.runs, ...candRuns.runs]) if (!r.missing) console.log(`${r.judge} ${r.seed}: scan ${(100 * r.success).toFixed(0)}% -> ${r.branch}: ASR ${r.asr.toFixed(2)}, excess ${r.excess.toFixed(2)}, ACC drop ${r.drop.toFixed(2)}`);
const dark = summary(darkRuns), cand = summary(candRuns);
const base = summary(pick('robust-mf02', [['scan', 'vardefense:robust-mf02']], judges, root));
for (const s of [dark, cand, base]) console.log(JSON.stringify(s));
const complete = dark.runs === DARK.length * 3 && cand.runs === RUNS && base.runs === RUNS;
const conditions = {
  darkMean: dark.meanExcess <= 2, darkWorst: dark.worstExcess <= 5,
  accuracy: cand.meanDropNot102 <= base.meanDropNot102 + 0.2, worstExcess: cand.worstExcess <= base.worstExcess + 1,
};
console.log(JSON.stringify(conditions));
console.log(complete ? `rule: ${Object.values(conditions).every(Boolean) ? 'robust-mf02-gate becomes the default' : 'the default stays robust-mf02'}` : `rule: not every run is there yet (${dark.runs + cand.runs} of ${DARK.length * 3 + RUNS} runs of the candidate)`);
