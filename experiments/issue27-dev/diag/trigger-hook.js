// A check, not a defense (it reads the attack's trigger; docs/results.md, "The purification is not what
// fails"): the trigger search replaced by the true square patch as the target's trigger and the suspect, so
// that `unlearn=suspect` unlearns the true trigger. ORACLE=x,y,side,level,target.
// usage: ORACLE=12,9,7,0,5 node -r ./experiments/issue27-dev/diag/trigger-hook.js dist/src/cli/main.js defend
//   <judge 109's defend flags> --clean-size 3000 --clean-seed 1 --method vardefense:robust-mf02 --no-verdict
//   --set unlearn=suspect --set stampFraction=0.3
const dist = require('path').join(__dirname, '..', '..', '..', 'dist', 'src');
const ts = require(`${dist}/defenses/trigger-search`);
const { tensor } = require(`${dist}/torch/compute`);
const [x0, y0, k, level, target] = process.env.ORACLE.split(',').map(Number);
const real = ts.searchTriggers;
ts.searchTriggers = (model, images, labels, norm, classes, o, thr, start, progress) => {
  const res = real(model, images, labels, norm, classes, { ...o, steps: 1 }, thr, start, progress);
  const m = new Float32Array(784), p = new Float32Array(784).fill(level);
  for (let y = y0; y < y0 + k; y++) for (let x = x0; x < x0 + k; x++) m[y * 28 + x] = 1;
  const t = res.triggers[target]; t.mask.dispose(); t.pattern.dispose();
  t.mask = tensor(m, [1, 1, 28, 28]); t.pattern = tensor(p, [1, 1, 28, 28]); t.maskL1 = k * k;
  return { ...res, suspect: target, flagged: true };
};
