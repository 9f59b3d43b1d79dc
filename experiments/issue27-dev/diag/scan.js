// Diagnostic (docs/results.md, "a dark patch over the object"): the square scan (src/defenses/square-scan.ts)
// on a development judge's original model, clean seed 1's defender split; prints the suspect's square and
// every class's success. Reads the judge's attack only to print the target beside the suspect.
// usage (after `npx tsc -p .`): node experiments/issue27-dev/diag/scan.js /work/judges/dev/109
const dist = require('path').join(__dirname, '..', '..', '..', 'dist', 'src');
const { loadModel, inputInfo } = require(`${dist}/pipeline/model`);
const { loadCleanData } = require(`${dist}/pipeline/clean-data`);
const { scanSquares, SQUARE_SCAN_DEFAULTS } = require(`${dist}/defenses/square-scan`);
const judgeDir = process.argv[2];
const j = require(`${judgeDir}/judge.json`), r = j.recipe ?? j;
const norm = r.norm ? { mean: [r.norm.mean], std: [r.norm.std] } : undefined;
const model = loadModel({ model: j.model_flags.match(/--model (\S+)/)[1], width: 16, dataset: 'fashion-mnist', weights: `${judgeDir}/model.pt`, norm });
const clean = loadCleanData({ kind: 'split', dataset: 'fashion-mnist', size: 3000, seed: 1 });
const t0 = Date.now();
const f = scanSquares(model, clean.images, clean.labels, inputInfo({ dataset: 'fashion-mnist', norm }), 10, SQUARE_SCAN_DEFAULTS, 2);
const t = f.triggers[f.suspect], m = t.mask.toArray();
let x0 = 99, y0 = 99;
m.forEach((v, i) => { if (v) { x0 = Math.min(x0, i % 28); y0 = Math.min(y0, Math.floor(i / 28)); } });
console.log(`suspect ${f.suspect} (target ${r.attack.target}) success ${t.success.toFixed(3)}, side ${Math.sqrt(t.maskL1)} at (${x0}, ${y0}), level ${t.pattern.toArray()[0].toFixed(2)}; per class ${f.triggers.map((q) => q.success.toFixed(2)).join(' ')}; ${(Date.now() - t0) / 1000} s`);
