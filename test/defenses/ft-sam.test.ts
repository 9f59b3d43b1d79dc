import { test } from 'node:test';
import * as assert from 'assert/strict';
import { manualSeed, randn, scope, tensor, Tensor } from '../../src/torch';
import { withoutTestSet } from '../../src/data/datasets';
import { fineTune, restore, snapshot } from '../../src/defenses/common';
import { ftSam, FtSamOptions, samGradients, samPerturbation, smoothCrossEntropy } from '../../src/defenses/ft-sam';
import { defenseMethod, resolveOptions } from '../../src/defenses/registry';
import { createModel } from '../../src/models';
import { normalize } from '../../src/train/loop';
import { maxAbsDiff } from '../helpers';
import { evaluate, plantedForDefense, PLANTED_NORM } from '../fixtures/planted';

const options = (o: Record<string, unknown> = {}): FtSamOptions => resolveOptions(defenseMethod('ft-sam'), 'default', o) as unknown as FtSamOptions;

test("FT-SAM defaults are BackdoorBench's (100 epochs, batch 256, lr 0.01, wd 5e-4, rho 2, adaptive, smoothing 0.1)", () => {
  const o = options();
  assert.deepEqual([o.epochs, o.batchSize, o.lr, o.momentum, o.weightDecay, o.rho, o.adaptive, o.labelSmoothing], [100, 256, 0.01, 0.9, 5e-4, 2, true, 0.1]);
  assert.equal(resolveOptions(defenseMethod('ft-sam'), 'cpu-short').epochs, 10);
});

test('smoothed cross-entropy: KL from 1 - s on the label and s / (C - 1) elsewhere, batch mean', () => {
  scope(() => {
    manualSeed(2);
    const z = randn([3, 4]);
    const y = tensor(Float64Array.from([0, 2, 3]), [3]).long();
    const zs = z.toList(), ys = [0, 2, 3];
    let direct = 0;
    for (let i = 0; i < 3; i++) {
      const row = zs.slice(4 * i, 4 * i + 4);
      const lse = Math.log(row.reduce((a, v) => a + Math.exp(v), 0));
      for (let c = 0; c < 4; c++) {
        const q = c === ys[i] ? 0.9 : 0.1 / 3;
        direct += q * (Math.log(q) - (row[c] - lse));
      }
    }
    assert.ok(Math.abs(smoothCrossEntropy(z, y, 0.1).item() - direct / 3) < 1e-6);
  });
});

function tinySetting(): { model: ReturnType<typeof createModel>; x: Tensor; y: Tensor } {
  manualSeed(11);
  const model = createModel({ name: 'resnet18', width: 4, inChannels: 1, numClasses: 10, imageSize: 8 });
  const n = 16;
  const x = normalize(tensor(Uint8Array.from({ length: n * 64 }, (_, i) => (i * 53) % 256), [n, 1, 8, 8]), PLANTED_NORM);
  const y = tensor(Float64Array.from({ length: n }, (_, i) => (i * 3) % 10), [n]).long();
  return { model, x, y };
}

test('the SAM perturbation is rho * g / ||g|| (adaptive: rho * w^2 g / || |w| g ||)', () => {
  const { model, x, y } = tinySetting();
  model.train();
  scope(() => smoothCrossEntropy(model.call(x), y, 0.1).backward());
  const params = model.parameters();
  for (const adaptive of [false, true]) {
    const e = samPerturbation(params, 0.7, adaptive);
    const scaled = params.map((p) => (adaptive ? p.abs().mul(p.grad!) : p.grad!.clone()));
    const norm = Math.sqrt(scaled.reduce((a, t) => a + t.toList().reduce((s, v) => s + v * v, 0), 0));
    let worst = 0, total = 0;
    params.forEach((p, i) => {
      const want = adaptive ? p.grad!.mul(p.square()).mul(0.7 / norm) : p.grad!.mul(0.7 / norm);
      worst = Math.max(worst, maxAbsDiff(e[i]!, want));
      total += e[i]!.toList().reduce((s, v) => s + v * v, 0);
      want.dispose();
    });
    assert.ok(worst < 1e-6, `adaptive=${adaptive}: max |e - direct| ${worst}`);
    if (!adaptive) assert.ok(Math.abs(Math.sqrt(total) - 0.7) < 1e-4, `||e|| = ${Math.sqrt(total)}`);
    for (const t of [...e, ...scaled]) t?.dispose();
  }
  model.zeroGrad();
  model.dispose();
});

test('samGradients: the gradient is taken at w + e, the weights and BN statistics are back at w before the step', () => {
  const { model, x, y } = tinySetting();
  model.train();
  const params = model.parameters();
  const loss = (z: Tensor): Tensor => smoothCrossEntropy(z, y, 0.1);
  const start = snapshot(model);
  const r = samGradients(model, params, x, y, loss, 0.5, false);
  const viaSam = params.map((p) => p.grad!.clone());
  const after = snapshot(model);
  model.zeroGrad();

  // direct: one pass for g (it moves the running statistics once), then w + rho g / ||g|| and a second pass
  restore(model, start);
  scope(() => loss(model.call(x)).backward());
  const oneStep = snapshot(model);
  const g = params.map((p) => p.grad!.clone());
  const norm = Math.sqrt(g.reduce((a, t) => a + t.toList().reduce((s, v) => s + v * v, 0), 0));
  scope(() => { params.forEach((p, i) => p.detach().add_(g[i].mul(0.5 / norm))); });
  model.zeroGrad();
  const l1 = scope(() => { const l = loss(model.call(x)); l.backward(); return l.item(); });
  // relative to the largest gradient entry: float kernels differ by instruction set (AVX2 vs AVX-512)
  const worst = Math.max(...params.map((p, i) => maxAbsDiff(viaSam[i], p.grad!)));
  const scale = Math.max(...params.map((p) => p.grad!.abs().amax().item()));
  assert.ok(worst < 1e-3 * scale, `max |grad - grad at w + e| = ${worst} (largest entry ${scale})`);
  assert.ok(Math.abs(r.perturbedLoss - l1) < 1e-4 && r.perturbedLoss > r.loss, `${r.loss} -> ${r.perturbedLoss} (direct ${l1})`);
  // weights exactly as before; BN statistics as after the single unperturbed pass
  for (const [k, v] of after) assert.deepEqual(v.toList(), (k.includes('running') || k.includes('num_batches') ? oneStep : start).get(k)!.toList(), k);
  model.zeroGrad();
  model.dispose();
});

test('FT-SAM removes the planted backdoor that plain fine-tuning keeps, while clean accuracy holds', () => {
  const { p, data, before, original } = plantedForDefense();
  const o = options(FIXTURE_OPTIONS);
  fineTune(p.model, data.train, data.norm, o);
  const ft = evaluate(p);
  restore(p.model, original);
  ftSam(p.model, data, { ...o, rho: 0 });
  const smooth = evaluate(p);
  restore(p.model, original);
  const r = withoutTestSet(() => ftSam(p.model, data, o));
  const after = evaluate(p);
  process.stderr.write(`planted FT-SAM ${JSON.stringify(FIXTURE_OPTIONS)}: ACC ${before.acc.toFixed(3)} -> ${after.acc.toFixed(3)}, ASR ${before.asr!.toFixed(3)} -> ${after.asr!.toFixed(3)} (FT, same options: ACC ${ft.acc.toFixed(3)}, ASR ${ft.asr!.toFixed(3)}; rho 0: ACC ${smooth.acc.toFixed(3)}, ASR ${smooth.asr!.toFixed(3)}), loss at w + e ${r.perturbedLossByEpoch.map((v) => v.toFixed(3)).join(' ')}, ${r.seconds.toFixed(1)} s\n`);
  assert.ok(before.asr! > 0.9);
  assert.ok(ft.asr! > 0.9, 'plain fine-tuning keeps the backdoor');
  assert.ok(after.asr! < ft.asr! - 0.5, `ASR after FT-SAM ${after.asr} vs FT ${ft.asr}`);
  // rho 0 (label smoothing alone) is printed, not asserted: at this lr it removes the backdoor on some
  // CPU kernels (ASR 0.000 with AVX2) and not on others (0.905 natively), so it is no stable control
  assert.ok(after.acc > before.acc - 0.1, `ACC ${before.acc} -> ${after.acc}`);
});

// not the published lr (0.01): on this small fixture neither FT nor FT-SAM moves at 0.01 in 10 epochs
const FIXTURE_OPTIONS: Record<string, unknown> = { batchSize: 32, epochs: 10, lr: 0.05 };
