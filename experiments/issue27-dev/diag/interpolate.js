// Diagnostic (development judges only): accuracy recovered by moving a purified model back toward the
// original, theta = original + a * (purified - original), for a few a, and what that costs in ASR.
// Every float tensor of the state dict is interpolated (BN running statistics too); integer ones are the
// purified model's. Measured with the CLI's eval (ACC on the test split, ASR on the judge's triggered images).
// usage (after `npx tsc -p .`): node experiments/issue27-dev/diag/interpolate.js <judge dir> "<a...>" <method dir>...
const path = require('path'), fs = require('fs'), os = require('os');
const { execFileSync } = require('child_process');
const dist = path.join(__dirname, '..', '..', '..', 'dist', 'src');
const { loadStateDictFile } = require(`${dist}/pipeline/model`);
const { saveSafetensors } = require(`${dist}/torch`);
const [judgeDir, alphas, ...dirs] = process.argv.slice(2);
const j = require(path.resolve(judgeDir, 'judge.json'));
const flags = j.model_flags.split(/\s+/);
const wi = flags.indexOf('--weights');
const cli = path.join(dist, 'cli', 'main.js');
const evalOf = (weights) => {
  const f = [...flags]; f[wi + 1] = weights;
  const out = execFileSync(process.execPath, [cli, 'eval', ...f, '--asr-images', path.join(judgeDir, 'test-triggered.npz'), '--json'], { encoding: 'utf8', env: { ...process.env, VARDEFENSE_THREADS: process.env.THREADS ?? '1' } });
  const m = JSON.parse(out);
  return { acc: m.acc * 100, asr: m.asr * 100 };
};
const orig = loadStateDictFile(path.resolve(judgeDir, 'model.pt'));
const o = evalOf(path.resolve(judgeDir, 'model.pt'));
console.log(`${judgeDir}: original ACC ${o.acc.toFixed(2)} ASR ${o.asr.toFixed(2)}`);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'interp-'));
for (const dir of dirs) {
  const pur = loadStateDictFile(path.join(dir, 'model.safetensors'));
  const cells = [];
  for (const a of alphas.split(/\s+/).map(Number)) {
    const sd = {};
    for (const [k, p] of pur) {
      const t = orig.get(k);
      sd[k] = t && p.dtype === 'float32' && t.dtype === 'float32' ? t.add(p.sub(t).mul(a)) : p;
    }
    const file = path.join(tmp, 'm.safetensors');
    saveSafetensors(file, sd);
    const e = evalOf(file);
    cells.push(`a ${a}: ACC ${e.acc.toFixed(2)} (drop ${(o.acc - e.acc).toFixed(2)}) ASR ${e.asr.toFixed(2)}`);
  }
  console.log(`  ${dir}\n    ${cells.join('\n    ')}`);
}
