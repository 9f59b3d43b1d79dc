// Finite-difference gradient checks (float64) for the operators the models use.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as T from '../../src/torch';
import { Tensor } from '../../src/torch';

/** Compares d(sum(f(x) * r))/dx from autograd with central differences, for every input element. */
function gradcheck(name: string, f: (...xs: Tensor[]) => Tensor, shapes: number[][], eps = 1e-6, tol = 1e-5): void {
  T.scope(() => {
    const xs = shapes.map((s) => T.randn(s, { dtype: 'float64' }).requiresGrad_());
    const out = f(...xs);
    const r = T.randn(out.shape, { dtype: 'float64' });
    out.mul(r).sum().backward();
    const objective = (): number => T.noGrad(() => T.scope(() => f(...xs).mul(r).sum().item()));
    for (const x of xs) {
      const analytic = x.grad!.toArray() as Float64Array;
      const data = x.view_() as Float64Array; // writes through to the input tensor
      for (let i = 0; i < data.length; i++) {
        const old = data[i];
        data[i] = old + eps; const up = objective();
        data[i] = old - eps; const down = objective();
        data[i] = old;
        const numeric = (up - down) / (2 * eps);
        const err = Math.abs(numeric - analytic[i]) / Math.max(1, Math.abs(numeric));
        assert.ok(err < tol, `${name}: d/dx[${i}] analytic ${analytic[i]} vs numeric ${numeric}`);
      }
    }
  });
}

test('gradients of the model operators match finite differences', () => {
  T.manualSeed(3);
  gradcheck('conv2d', (x, w, b) => T.F.conv2d(x, w, b, { stride: 2, padding: 1 }), [[2, 2, 5, 5], [3, 2, 3, 3], [3]]);
  gradcheck('linear', (x, w, b) => T.F.linear(x, w, b), [[4, 3], [2, 3], [2]]);
  gradcheck('batch_norm (training)', (x, w, b) => T.F.batchNorm(x, null, null, w, b, { training: true }), [[4, 3, 2, 2], [3], [3]]);
  gradcheck('batch_norm (eval)', (x, w, b) => {
    const rm = T.tensor([0.1, -0.2, 0.3], [3], 'float64'), rv = T.tensor([1.5, 0.5, 2], [3], 'float64');
    return T.F.batchNorm(x, rm, rv, w, b, { training: false });
  }, [[2, 3, 2, 2], [3], [3]]);
  gradcheck('relu', (x) => x.relu(), [[3, 4]]);
  gradcheck('max_pool2d', (x) => T.F.maxPool2d(x, 2), [[1, 2, 4, 4]]);
  gradcheck('avg_pool2d', (x) => T.F.avgPool2d(x, 2), [[1, 2, 4, 4]]);
  gradcheck('adaptive_avg_pool2d', (x) => T.F.adaptiveAvgPool2d(x, 1), [[2, 2, 3, 3]]);
  gradcheck('mean/var over dims', (x) => x.var([2, 3], false).add(x.mean([2, 3])), [[2, 3, 2, 2]]);
  gradcheck('cross_entropy', (x) => T.F.crossEntropy(x, T.tensor([0, 2, 1], [3], 'int64')), [[3, 4]]);
  gradcheck('log_softmax', (x) => T.F.logSoftmax(x, 1), [[2, 5]]);
  gradcheck('broadcast add/mul/div', (a, b) => a.mul(b).add(b).div(b.abs().add(1)), [[2, 3], [3]]);
  gradcheck('abs and squares (regularisers)', (a) => a.abs().sum().add(a.square().sum().sqrt()), [[6]]);
});
