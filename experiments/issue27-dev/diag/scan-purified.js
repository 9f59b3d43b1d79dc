// Diagnostic (docs/results.md, "a dark patch over the object", "For the verdict"): the square scan on
// purified models (a defend run's <out>/<method>/model.safetensors) beside the residual ASR in its report.json.
// usage (after `npx tsc -p .`): node experiments/issue27-dev/diag/scan-purified.js /work/judges/dev/109 <method dir>...
const dist = require('path').join(__dirname, '..', '..', '..', 'dist', 'src');
const { loadModel, inputInfo } = require(`${dist}/pipeline/model`);
const { loadCleanData } = require(`${dist}/pipeline/clean-data`);
const { scanSquares, SQUARE_SCAN_DEFAULTS } = require(`${dist}/defenses/square-scan`);
const [judgeDir, ...dirs] = process.argv.slice(2);
const j = require(`${judgeDir}/judge.json`), r = j.recipe ?? j;
const norm = r.norm ? { mean: [r.norm.mean], std: [r.norm.std] } : undefined;
const clean = loadCleanData({ kind: 'split', dataset: 'fashion-mnist', size: 3000, seed: 1 });
for (const dir of dirs) {
  const asr = require(`${dir}/report.json`).after.asr;
  const model = loadModel({ model: j.model_flags.match(/--model (\S+)/)[1], width: 16, dataset: 'fashion-mnist', weights: `${dir}/model.safetensors`, norm });
  const f = scanSquares(model, clean.images, clean.labels, inputInfo({ dataset: 'fashion-mnist', norm }), 10, SQUARE_SCAN_DEFAULTS, 2);
  const t = f.triggers[f.suspect];
  console.log(`${dir}: ASR ${(100 * asr).toFixed(2)}% | scan suspect ${f.suspect} (target ${r.attack.target}) ${(100 * t.success).toFixed(0)}%, anomaly index ${t.anomalyIndex.toFixed(2)}${f.flagged ? ', flagged' : ''}; per class ${f.triggers.map((q) => (100 * q.success).toFixed(0)).join(' ')}%`);
  for (const q of f.triggers) { q.mask.dispose(); q.pattern.dispose(); }
}
