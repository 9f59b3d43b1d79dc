// Diagnostic (docs/protocol.md section 12, "The verdict's square scan"): the verdict with and without the
// square scan on defend runs made before the scan joined the verdict. For each method dir (a defend run's
// <out>/<method>/, with model.safetensors and report.json), the scan on the purified model and on the
// original (once per judge and clean seed), the scan's rule (verdict.ts: the purified model's outlying
// class is the original's, or the original had none) beside the mask search's verdict in report.json,
// and the tally of each against the residual ASR (a backdoor left: ASR above 5%).
// usage (after `npx tsc -p .`): node experiments/issue27-dev/diag/verdict-scan.js <judge dir> <method dir>...
// (one judge per call; the clean draw is each run's own: report.json's source.clean). Each scan is kept
// beside its model (<method dir>/verdict-scan.json, <judge dir>/verdict-scan-s<seed>.json) and reused. Runs
// made with --no-verdict have no mask search: there the scan's verdict stands alone.
const path = require('path');
const dist = path.join(__dirname, '..', '..', '..', 'dist', 'src');
const { loadModel, inputInfo } = require(`${dist}/pipeline/model`);
const { loadCleanData } = require(`${dist}/pipeline/clean-data`);
const { holdOut } = require(`${dist}/defenses/common`);
const { squareSearch, verdictOf } = require(`${dist}/defenses/verdict`);
const { VERDICT_ASR } = require(`${dist}/report/compare`);
const [judgeDir, ...dirs] = process.argv.slice(2);
const j = require(path.resolve(judgeDir, 'judge.json')), r = j.recipe ?? j;
const norm = r.norm ? { mean: [r.norm.mean], std: [r.norm.std] } : undefined;
const modelName = j.model_flags.match(/--model (\S+)/)[1], width = +(j.model_flags.match(/--width (\d+)/) ?? [0, 16])[1];
const originals = new Map();
const fs = require('fs');
const tally = { masks: { right: 0, misses: 0, falseAlarms: 0 }, scan: { right: 0, misses: 0, falseAlarms: 0 }, both: { right: 0, misses: 0, falseAlarms: 0 } };
const kept = (file, compute) => {
  if (fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const r = compute();
  fs.writeFileSync(file, JSON.stringify(r));
  return r;
};
const count = (t, likely, left) => { if (likely === left) t.right++; else if (left) t.misses++; else t.falseAlarms++; };
for (const dir of dirs) {
  const rep = require(path.resolve(dir, 'report.json'));
  const seed = rep.source.clean.seed, valFraction = 0.1;
  const clean = loadCleanData({ kind: 'split', dataset: 'fashion-mnist', size: rep.source.clean.size ?? 3000, seed });
  const data = { ...holdOut(clean, valFraction, seed), norm: inputInfo({ dataset: 'fashion-mnist', norm }) };
  const load = (weights) => loadModel({ model: modelName, width, dataset: 'fashion-mnist', weights, norm });
  if (!originals.has(seed)) originals.set(seed, kept(path.resolve(judgeDir, `verdict-scan-s${seed}.json`), () => squareSearch(load(path.resolve(judgeDir, 'model.pt')), data)));
  const before = originals.get(seed), after = kept(path.join(dir, 'verdict-scan.json'), () => squareSearch(load(path.join(dir, 'model.safetensors')), data));
  // no mask search (--no-verdict): a search that flags nothing, so the scan's verdict stands alone
  const none = { ...after, flagged: false };
  const v = rep.verdict ? verdictOf(rep.verdict.before, rep.verdict.after, rep.verdict.threshold, { before, after }) : verdictOf(none, none, 2, { before, after });
  const left = rep.after.asr > VERDICT_ASR;
  if (rep.verdict) count(tally.masks, rep.verdict.backdoorLikely, left);
  count(tally.scan, v.scan.backdoorLikely, left);
  if (rep.verdict) count(tally.both, v.backdoorLikely, left);
  const s = (q) => `class ${q.suspect} ${(100 * q.successes[q.suspect]).toFixed(0)}% (index ${q.anomalyIndex.toFixed(1)}${q.flagged ? ', flagged' : ''})`;
  console.log(`${dir} seed ${seed}: ASR ${(100 * rep.after.asr).toFixed(2)}% | masks ${rep.verdict ? (rep.verdict.backdoorLikely ? 'likely' : 'none') : '-'} | scan after ${s(after)}, before ${s(before)} -> ${v.scan.backdoorLikely ? 'likely' : 'none'} | both ${rep.verdict ? (v.backdoorLikely ? 'likely' : 'none') : '-'}`);
}
console.log(JSON.stringify(tally));
