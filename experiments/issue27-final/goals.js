// Issue 27's goal, judge by judge and family by family, from the records of a judges' grid (docs/protocol.md
// section 10): each judge's runs over clean seeds 1-3, per defense, as mean and worst case, against the goal
// of its family, and each defense over every judge (mean and worst ACC - ASR, worst excess, the verdict).
//   node experiments/issue27-final/goals.js [records] [judges.json] [tag] [FT's name]   (after `npx tsc -p .`)
// default: experiments/records/issue27-final, experiments/judges/final.json, tag grid.
// Goal (issue 27): patch triggers mean excess ASR <= 0.5 point, worst run <= 2, mean ACC drop <= 1;
// blends ASR <= 5% (mean) at <= 1.5 points of ACC (mean); SIG and WaNet mean excess <= 2 points.
// Excess ASR is ASR after minus the clean->target floor after (the judge's triggered images, --asr-images).
const fs = require('fs');
const path = require('path');
const { collectRows, excessOf } = require('../../dist/src/report/summary');

const pts = (x) => (x === null || x === undefined || Number.isNaN(x) ? '-' : (100 * x).toFixed(2));
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
const max = (xs) => Math.max(...xs);

/** patch | blend | sig | warp, from a judge's recipe */
const familyOf = (j) => j.attack.trigger.kind;
const describe = (j) => `${j.seed} ${j.name.replace(/^(final|dev)-/, '')}`;

/** The goal of a family on a judge's runs: true, false, or null where the issue sets none. */
function goal(family, s) {
  if (family === 'patch') return s.excess.mean <= 0.005 && s.excess.worst <= 0.02 && s.drop.mean <= 0.01;
  if (family === 'blend') return s.asr.mean <= 0.05 && s.drop.mean <= 0.015;
  if (family === 'sig' || family === 'warp') return s.excess.mean <= 0.02;
  return null;
}

/** Mean and worst (largest) of f over runs, or null when a run lacks it. */
function stat(runs, f) {
  const v = runs.map(f);
  return v.some((x) => x === null || x === undefined) ? { mean: null, worst: null } : { mean: mean(v), worst: max(v) };
}

/**
 * Markdown tables of the goal, per judge and defense, and per defense over all judges. `judgesFile`: a
 * judges' list (experiments/judges/*.json: `judges`, or the zoo's `models`); `ft`: the defense whose
 * time is the unit of the time column.
 */
function goalTables(records, judgesFile, tag = 'grid', ft = 'ft:published') {
  const list = JSON.parse(fs.readFileSync(judgesFile, 'utf8'));
  const judges = Array.isArray(list) ? list : list.judges ?? list.models;
  const rows = collectRows([records]).filter((r) => path.basename(path.dirname(path.dirname(r.dir))) === tag);
  const judgeOf = (r) => path.basename(path.dirname(path.dirname(path.dirname(r.dir)))).replace(/^j/, '');
  const defenses = [...new Set(rows.map((r) => r.defense + (r.settings ? ` ${r.settings}` : '')))];
  const label = (r) => r.defense + (r.settings ? ` ${r.settings}` : '');
  const ftSeconds = (r) => rows.find((x) => x.defense === ft && judgeOf(x) === judgeOf(r) && path.basename(path.dirname(x.dir)) === path.basename(path.dirname(r.dir)))?.seconds;
  const perJudge = ['| judge | family | defense | runs | ACC before | ACC drop mean / worst | ASR after mean / worst | excess ASR mean / worst | goal | time / FT |', '|---|---|---|---|---|---|---|---|---|---|'];
  const overall = new Map(defenses.map((d) => [d, { runs: [], met: 0, goals: 0 }]));
  for (const j of judges) {
    const family = familyOf(j);
    for (const d of defenses) {
      const runs = rows.filter((r) => judgeOf(r) === String(j.seed) && label(r) === d);
      if (!runs.length) continue;
      const s = { drop: stat(runs, (r) => r.accBefore - r.accAfter), asr: stat(runs, (r) => r.asrAfter), excess: stat(runs, excessOf) };
      const g = goal(family, s);
      const o = overall.get(d);
      o.runs.push(...runs);
      if (g !== null) { o.goals++; if (g) o.met++; }
      const ratio = runs.map((r) => (ftSeconds(r) ? r.seconds / ftSeconds(r) : null)).filter((x) => x !== null);
      perJudge.push(`| ${describe(j)} | ${family}${j.attack.mode === 'all-to-one' ? '' : ` (${j.attack.mode})`} | ${d} | ${runs.length} | ${pts(mean(runs.map((r) => r.accBefore)))} | ` +
        `${pts(s.drop.mean)} / ${pts(s.drop.worst)} | ${pts(s.asr.mean)} / ${pts(s.asr.worst)} | ${pts(s.excess.mean)} / ${pts(s.excess.worst)} | ${g === null ? '-' : g ? 'met' : 'missed'} | ` +
        `${ratio.length ? mean(ratio).toFixed(2) : '-'} |`);
    }
  }
  const byDefense = ['| defense | runs | mean ACC - ASR | worst ACC - ASR | mean excess ASR | worst excess ASR | mean ACC drop | worst ACC drop | judges at goal | verdict right / misses / false alarms |', '|---|---|---|---|---|---|---|---|---|---|'];
  for (const [d, o] of overall) {
    if (!o.runs.length) continue;
    const am = o.runs.map((r) => r.accAfter - r.asrAfter), ex = o.runs.map(excessOf).filter((x) => x !== null), dr = o.runs.map((r) => r.accBefore - r.accAfter);
    const judged = o.runs.filter((r) => r.verdictLikely !== undefined);
    const verdict = judged.length ? `${judged.filter((r) => (r.asrAfter > 0.05) === r.verdictLikely).length} / ${judged.filter((r) => r.asrAfter > 0.05 && !r.verdictLikely).length} / ` +
      `${judged.filter((r) => r.asrAfter <= 0.05 && r.verdictLikely).length} of ${judged.length}` : '-';
    byDefense.push(`| ${d} | ${o.runs.length} | ${pts(mean(am))} | ${pts(Math.min(...am))} | ${pts(mean(ex))} | ${pts(max(ex))} | ${pts(mean(dr))} | ${pts(max(dr))} | ${o.met} of ${o.goals} | ${verdict} |`);
  }
  return { perJudge: perJudge.join('\n'), byDefense: byDefense.join('\n'), runs: rows.length };
}

module.exports = { goalTables, goal };

if (require.main === module) {
  const root = path.join(__dirname, '..', '..');
  const [records = path.join(root, 'experiments', 'records', 'issue27-final'), judges = path.join(root, 'experiments', 'judges', 'final.json'), tag = 'grid', ft = 'ft:published'] = process.argv.slice(2);
  const t = goalTables(records, judges, tag, ft);
  console.log(`${t.runs} runs\n\n${t.byDefense}\n\n${t.perJudge}`);
}
