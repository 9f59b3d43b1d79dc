// Parity of the toolkit's torchvision architectures with Debian's python3-torchvision 0.14: the state dict
// torch.save wrote loads strictly by name; eval logits within 1e-4 relative; in train mode (batch
// statistics, dropout and stochastic depth at p = 0 on both sides) the logits within 1e-3 relative, and the
// gradients of a few named parameters after one backward within 1e-3 relative of PyTorch's float32 ones
// (contiguous or channels-last activations), or, where PyTorch's own float32 gradients are further than
// that from its float64 one (deep batch-normed networks in train mode amplify rounding: ResNet-50 at batch
// 2, 2% contiguous, 5% channels-last), no further from float64 than 2x PyTorch's larger float32 error.
// Relative = max |diff| / max |ref|. Both sides run on the same number of threads (DenseNet-121 at batch
// 2: PyTorch on 1 vs 2 threads differs by 10% on one gradient; the toolkit matches PyTorch at equal counts).
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as T from '../../src/torch';
import { createModel, ModelName } from '../../src/models';
import { StochasticDepth } from '../../src/models/torchvision-ops';
import { maxAbsDiff, python, relDiff, tmpDir } from '../helpers';

/** batch 0: only the state dict's names, shapes and order are compared (no weights travel) */
export interface ZooSpec {
  name: ModelName; inChannels: number; size: number; batch: number;
  /** eval only: no backward (the largest models) */
  evalOnly?: boolean;
  /** PyTorch also in float64 (and channels-last for the ResNets), for ill-conditioned gradients */
  float64?: boolean;
}

/** grads: [name, ours vs PyTorch float32 (the nearer layout), ours vs float64, PyTorch float32 (the further layout) vs float64] */
export interface ZooFigures { tag: string; evalRel: number; trainRel: number; lossDiff: number; grads: [string, number, number, number][] }

/** Runs the PyTorch reference for the specs and checks each model; returns the measured figures. */
export function checkZooParity(specs: ZooSpec[], tol = { eval: 1e-4, train: 1e-3, grad: 1e-3 }): ZooFigures[] {
  // the state dicts run to hundreds of MB (VGG-16: 528): memory-backed /dev/shm where there is one
  const dir = fs.existsSync('/dev/shm') ? fs.mkdtempSync('/dev/shm/vardefense-zoo-') : tmpDir('zoo');
  const figures: ZooFigures[] = [];
  try {
    // PyTorch on as many threads as the toolkit: the split of reductions changes the rounding
    process.env.ZOO_THREADS = String(T.getNumThreads());
    python('torchvision_zoo_ref.py', dir, ...specs.map((s) => `${s.name}:${s.inChannels}:${s.size}:${s.batch}${s.float64 ? ':f64' : ''}`));
    const ref = T.loadSafetensors(path.join(dir, 'ref.safetensors')).tensors;
    for (const s of specs) {
      const tag = `${s.name}_${s.inChannels}`;
      const r = (k: string): T.Tensor => { const t = ref.get(`${tag}.${k}`); assert.ok(t, `reference lacks ${tag}.${k}`); return t; };
      T.manualSeed(0);
      const model = createModel({ name: s.name, inChannels: s.inChannels, numClasses: 10, imageSize: s.size });
      if (s.batch === 0) {
        const want = JSON.parse(Buffer.from(r('keys').toArray() as Uint8Array).toString()) as { state: [string, number[]][]; modules: string[]; norms: [string, number, number | null][] };
        assert.deepEqual([...model.stateDict()].map(([k, v]) => [k, v.shape]), want.state, `${tag}: state-dict names, shapes and order`);
        // every module under its name, in PyTorch's order (hooks address them), but the ReLU torchvision's
        // ResNet blocks register and the toolkit's apply inline
        const pyModules = want.modules.filter((n) => !/^layer\d\.\d+\.relu$/.test(n));
        assert.deepEqual(model.namedModules().map(([n]) => n), pyModules, `${tag}: module names and order`);
        // what the state dict does not hold: the norms' eps (and batch norm's momentum)
        const norms = model.namedModules().flatMap(([n, m]) => (m instanceof T.nn.BatchNorm2d ? [[n, m.eps, m.momentum]] : m instanceof T.nn.LayerNorm ? [[n, m.eps, null]] : []));
        assert.deepEqual(norms, want.norms, `${tag}: norm layers' eps and momentum`);
        figures.push({ tag, evalRel: NaN, trainRel: NaN, lossDiff: NaN, grads: [] });
        model.dispose();
        continue;
      }
      const sd = T.loadTorchStateDict(path.join(dir, `${tag}.pt`));
      model.loadStateDict(sd); // strict: every key and shape matches both ways
      T.dispose(sd);
      fs.rmSync(path.join(dir, `${tag}.pt`));
      // as on the PyTorch side: dropout and stochastic depth at p = 0, so train mode is deterministic
      for (const [, m] of model.namedModules()) if (m instanceof T.nn.Dropout || m instanceof StochasticDepth) Object.assign(m, { p: 0 });
      const x = r('x');
      model.eval();
      const logits = T.noGrad(() => model.call(x));
      const evalRel = relDiff(logits, r('logits_eval'));
      assert.ok(evalRel <= tol.eval, `${tag}: eval logits differ by ${evalRel} relative (> ${tol.eval})`);
      // the logits differ between the images: a model that ignored its input would fail
      assert.ok(maxAbsDiff(logits.select(0, 0), logits.select(0, 1)) > 1e-3, `${tag}: both images give the same logits`);
      logits.dispose();
      const fig: ZooFigures = { tag, evalRel, trainRel: NaN, lossDiff: NaN, grads: [] };
      if (!s.evalOnly) {
        model.train();
        const out = model.call(x);
        const loss = T.F.crossEntropy(out, r('y'));
        loss.backward();
        fig.trainRel = relDiff(out.detach(), r('logits_train'));
        fig.lossDiff = Math.abs(loss.item() - r('loss').item());
        assert.ok(fig.trainRel <= tol.train, `${tag}: train-mode logits differ by ${fig.trainRel} relative (> ${tol.train})`);
        const names = Buffer.from(r('params').toArray() as Uint8Array).toString().split(',');
        const params = new Map(model.namedParameters());
        for (const n of names) {
          const g = params.get(n)?.grad;
          assert.ok(g, `${tag}: no gradient for ${n}`);
          // gradcl: PyTorch with channels-last activations, for the models the toolkit runs so
          const refs = [r(`grad.${n}`), ...(ref.has(`${tag}.gradcl.${n}`) ? [r(`gradcl.${n}`)] : [])];
          const d = Math.min(...refs.map((t) => relDiff(g, t)));
          const [d64, pt64] = s.float64 ? [relDiff(g, r(`grad64.${n}`)), Math.max(...refs.map((t) => relDiff(t, r(`grad64.${n}`))))] : [NaN, NaN];
          fig.grads.push([n, d, d64, pt64]);
          assert.ok(d <= tol.grad || d64 <= 2 * pt64, `${tag}: gradient of ${n} differs by ${d} relative from PyTorch's (> ${tol.grad}) and by ${d64} from float64 (PyTorch's float32: ${pt64})`);
        }
        T.dispose([out, loss]);
      }
      figures.push(fig);
      model.dispose();
    }
    T.dispose(ref);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  for (const f of figures)
    console.log(`# ${f.tag}: eval ${f.evalRel.toExponential(2)}, train ${f.trainRel.toExponential(2)}, |dloss| ${f.lossDiff.toExponential(2)}, grads (vs PyTorch f32 / vs f64 / PyTorch f32 vs f64) ${f.grads.map(([n, ...d]) => `${n} ${d.map((v) => v.toExponential(1)).join('/')}`).join('; ')}`);
  return figures;
}
