// Where and from what VarDefense measures (issue 12): measureAt 'bn-relu', statsSource 'original-eval'
// (scores of the original model in eval mode, fixed through the purification), and the selection
// controls (metric 'random', the control-* presets).
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { nn, noGrad, randn, scope, tensor } from '../../src/torch';
import { ResNet18 } from '../../src/models/resnet';
import { normalize } from '../../src/train/loop';
import { DefenseData } from '../../src/defenses/common';
import { randomScores } from '../../src/defenses/metrics';
import { defenseMethod, resolveOptions, VARDEFENSE_PRESETS } from '../../src/defenses/registry';
import { lastUnits, lowestChannels } from '../../src/defenses/selection';
import { measuredOutput, varDefense, VarDefenseOptions } from '../../src/defenses/vardefense';
import { planted, PLANTED_NORM } from '../fixtures/planted';

const options = (preset: string, o: Record<string, unknown> = {}): VarDefenseOptions =>
  resolveOptions(defenseMethod('vardefense'), preset, o) as unknown as VarDefenseOptions;

/**
 * The reference: forward hooks on the measured modules in a separate eval pass over the clean training
 * images (in order, `batchSize` at a time), per-batch population variance per channel in float64 here
 * in JavaScript, combined over batches with momentum m (v <- m v + (1 - m) v_batch, the first batch as
 * is) or pooled exactly (m null).
 */
function directVariances(model: nn.Module, data: DefenseData, layers: number, measureAt: VarDefenseOptions['measureAt'], batchSize: number, m: number | null, mode: 'eval' | 'train' = 'eval'): number[][] {
  const units = lastUnits(model, layers);
  const acc: { v: number[]; sum: number[]; sq: number[]; count: number; batches: number }[] = units.map(() => ({ v: [], sum: [], sq: [], count: 0, batches: 0 }));
  const hooks = units.map((u, i) => {
    const at = measuredOutput(u, measureAt);
    return at.module.registerForwardHook((_mod, _in, out) => {
      const [nb, c] = [out.size(0), out.size(1)];
      const x = noGrad(() => scope(() => (at.relu ? out.relu() : out).detach().to('float64').toArray() as Float64Array));
      const per = x.length / (nb * c);
      const a = acc[i];
      const bv: number[] = [];
      for (let ch = 0; ch < c; ch++) {
        let s = 0, sq = 0;
        for (let k = 0; k < nb; k++) for (let j = 0; j < per; j++) { const v = x[(k * c + ch) * per + j]; s += v; sq += v * v; }
        const mean = s / (nb * per);
        let dev = 0;
        for (let k = 0; k < nb; k++) for (let j = 0; j < per; j++) dev += (x[(k * c + ch) * per + j] - mean) ** 2;
        bv.push(dev / (nb * per));
        a.sum[ch] = (a.sum[ch] ?? 0) + s;
        a.sq[ch] = (a.sq[ch] ?? 0) + sq;
      }
      a.v = a.batches === 0 || m === null ? bv : a.v.map((v, ch) => m * v + (1 - m) * bv[ch]);
      a.count += nb * per;
      a.batches++;
    });
  });
  if (mode === 'eval') model.eval(); else model.train(); // train mode moves BN's running statistics: callers restore
  const n = data.train.labels.numel;
  noGrad(() => { for (let s = 0; s < n; s += batchSize) scope(() => { model.call(normalize(data.train.images.narrow(0, s, Math.min(batchSize, n - s)), data.norm)); }); });
  for (const h of hooks) h.remove();
  // pooled: E[x^2] - E[x]^2 over every value (float64; the activations are float32, far from cancelling)
  return acc.map((a) => (m === null ? a.sum.map((s, ch) => a.sq[ch] / a.count - (s / a.count) ** 2) : a.v));
}

function ranks(x: number[]): number[] {
  const idx = x.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const r = new Array<number>(x.length);
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && idx[j + 1][0] === idx[i][0]) j++;
    for (let k = i; k <= j; k++) r[idx[k][1]] = (i + j) / 2;
    i = j + 1;
  }
  return r;
}

function spearman(a: number[], b: number[]): number {
  const ra = ranks(a), rb = ranks(b);
  const mean = (v: number[]): number => v.reduce((s, x) => s + x, 0) / v.length;
  const ma = mean(ra), mb = mean(rb);
  let num = 0, da = 0, db = 0;
  for (let i = 0; i < ra.length; i++) { num += (ra[i] - ma) * (rb[i] - mb); da += (ra[i] - ma) ** 2; db += (rb[i] - mb) ** 2; }
  return num / Math.sqrt(da * db);
}

const relDiff = (a: number, b: number): number => Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-30);

test("statsSource 'original-eval' scores the original model in eval mode and keeps the scores fixed", () => {
  const layers = 10, batchSize = 64;
  for (const [measureAt, m] of [['bn-relu', 0.9], ['bn', null]] as const) {
    const p = planted();
    const expected = directVariances(p.model, p.data, layers, measureAt, batchSize, m);
    const gammaBefore = lastUnits(p.model, layers).map((u) => u.bn!.weight.toList());
    const o = options('bn-distill', { measureAt, statsSource: 'original-eval', statsMomentum: m, layers, batchSize, epochs: 2, thresholdStep: 'iteration' });
    const r = varDefense(p.model, p.data, o);
    let worst = 0;
    r.perLayer.forEach((l, i) => l.scoresBefore.forEach((v, c) => { worst = Math.max(worst, relDiff(v, expected[i][c])); }));
    process.stderr.write(`${measureAt} (momentum ${m}): largest relative difference to the direct computation ${worst.toExponential(2)}\n`);
    assert.ok(worst <= 1e-6, `${measureAt}: scores vs the direct eval-mode computation, relative ${worst}`);
    // fixed: the same scores at the end, and every step's threshold taken over those scores
    const steps = r.thresholds.length;
    assert.ok(steps >= 4, `several threshold steps (${steps})`);
    r.perLayer.forEach((l, i) => {
      assert.deepEqual(l.scoresAfter, l.scoresBefore, `${l.name}: scores unchanged by the fine-tune`);
      r.thresholds.forEach((f, s) => {
        const sel = lowestChannels(l.scoresBefore, f);
        const value = sel.length ? Math.max(...sel.map((c) => l.scoresBefore[c])) : NaN;
        assert.ok(Object.is(l.thresholdValues[s], value), `${l.name} step ${s}: threshold ${l.thresholdValues[s]} over the fixed scores (${value})`);
      });
      assert.deepEqual(l.selected, lowestChannels(l.scoresBefore, r.thresholds[steps - 1]));
    });
    // not vacuous: the purification moved the model, and measuring it again would give other scores
    const gammaAfter = lastUnits(p.model, layers).map((u) => u.bn!.weight.toList());
    const moved = Math.max(...gammaAfter.flatMap((g, i) => g.map((v, c) => Math.abs(v - gammaBefore[i][c]))));
    const again = directVariances(p.model, p.data, layers, measureAt, batchSize, m);
    const changed = Math.max(...again.flatMap((a, i) => a.map((v, c) => relDiff(v, expected[i][c]))));
    process.stderr.write(`${measureAt}: largest |gamma| change ${moved.toFixed(4)}, largest relative change of a re-measured score ${changed.toFixed(4)}\n`);
    assert.ok(moved > 0.01 && changed > 0.01, `the fine-tune changed the model (gamma by ${moved}, scores by ${changed})`);
  }
});

test("statsSource 'training' (the option's default) with 'bn-relu': measured first on the original, then followed during training", () => {
  const p = planted();
  const expected = directVariances(p.model, p.data, 4, 'bn-relu', 64, 0.9);
  const r = varDefense(p.model, p.data, options('bn-distill', { measureAt: 'bn-relu', layers: 4, batchSize: 64, epochs: 2 }));
  assert.equal(r.options.statsSource, undefined, 'absent means training');
  let worst = 0, changed = 0;
  r.perLayer.forEach((l, i) => l.scoresBefore.forEach((v, c) => {
    worst = Math.max(worst, relDiff(v, expected[i][c]));
    changed = Math.max(changed, relDiff(l.scoresAfter[c], v));
  }));
  assert.ok(worst <= 1e-6, `first selection from the eval pass (relative ${worst})`);
  assert.ok(changed > 0.01, `the scores follow the training (largest relative change ${changed})`);
});

// the default (bn-distill-eval since protocol section 8b) and the frozen bn-distill, which measures in
// training but takes its first selection from an eval pass
for (const [preset, source] of [['default', 'original-eval'], ['bn-distill', undefined]] as const) {
  test(`${preset}'s score is not a function of gamma: a channel's input scaled at fixed gamma moves its score, and only its own`, () => {
    // the last measured layer's channel 3: its conv filter x3, so the BN's input for that channel is 3x wider
    // while gamma, beta and the running statistics stay; in eval mode its output variance grows 9x
    const scores = (scale: number): { scores: number[]; gamma: number[] } => {
      const p = planted();
      const u = lastUnits(p.model, 10)[9];
      if (scale !== 1) noGrad(() => scope(() => { u.conv.weight.narrow(0, 3, 1).mul_(scale); }));
      const gamma = u.bn!.weight.toList() as number[];
      const r = varDefense(p.model, p.data, options(preset, { epochs: 1 }));
      assert.equal(r.options.measureAt, 'bn');
      assert.equal(r.options.statsSource, source);
      return { scores: r.perLayer[9].scoresBefore, gamma };
    };
    const base = scores(1), wider = scores(3);
    assert.deepEqual(wider.gamma, base.gamma, 'gamma unchanged');
    const ratio = wider.scores[3] / base.scores[3];
    process.stderr.write(`${preset}: channel 3's score x${ratio.toFixed(2)} with its input x3 at fixed gamma\n`);
    assert.ok(ratio > 4, `the score follows the input's spread (x${ratio})`);
    const others = Math.max(...base.scores.map((v, c) => (c === 3 ? 0 : relDiff(wider.scores[c], v))));
    assert.ok(others < 1e-4, `the layer's other channels keep their scores (relative ${others})`);
  });
}

test('on the planted fixture: rank correlation of the eval-mode scores with |gamma| (printed)', () => {
  // printed: how far a data measurement departs from the |gamma| ranking that
  // measureAt=bn in train mode reduces to (gamma^2 var / (var + eps) per batch)
  const p = planted();
  const units = lastUnits(p.model, 10);
  const gamma = units.map((u) => u.bn!.weight.toList().map(Math.abs));
  const lines: string[] = [];
  const pooledEval: number[] = [];
  for (const measureAt of ['bn-relu', 'bn'] as const) {
    const v = directVariances(p.model, p.data, 10, measureAt, 128, 0.9);
    const rho = v.map((x, i) => spearman(x, gamma[i]));
    const pooled = spearman(v.flat(), gamma.flat());
    pooledEval.push(pooled);
    lines.push(`${measureAt}, original-eval: Spearman with |gamma| per layer [${units.map((u, i) => `${u.name} ${rho[i].toFixed(3)}`).join(', ')}], all channels ${pooled.toFixed(3)}`);
  }
  // the contrast: the same pass in train mode (batch statistics), what 'training' measures at bn
  const t = directVariances(p.model, p.data, 10, 'bn', 128, 0.9, 'train');
  const rhoTrain = spearman(t.flat(), gamma.flat());
  lines.push(`bn, train mode: Spearman with |gamma| per layer [${t.map((x, i) => spearman(x, gamma[i]).toFixed(3)).join(', ')}], all channels ${rhoTrain.toFixed(3)}`);
  process.stderr.write(lines.join('\n') + '\n');
  planted(); // the train-mode pass moved the running statistics: hand the fixture back as trained
  // asserted only with wide margins: seen 0.24-0.32 (eval) and 1.000 (train) at 1 and 2 threads and with
  // ATEN_CPU_CAPABILITY avx2 / default; train mode is |gamma|'s ranking by construction
  assert.ok(rhoTrain > 0.95, `train-mode BN variance ranks as |gamma| (${rhoTrain})`);
  for (const r of pooledEval) assert.ok(r < 0.8, `the eval-mode measurement is not |gamma|'s ranking (${r})`);
});

test("metric 'random': seeded scores, the same count per layer as any metric, no measurement pass", () => {
  const p = planted();
  const run = (seed: number) => {
    const stages = new Set<string>();
    const r = varDefense(planted().model, p.data, options('control-random', { seed, epochs: 2, batchSize: 64 }), { progress: (s) => stages.add(s) });
    assert.ok(![...stages].some((s) => s.endsWith('measure')), `no measurement pass (${[...stages].join(', ')})`);
    return r;
  };
  const a = run(1), b = run(1), c = run(2);
  const v = varDefense(planted().model, p.data, options('bn-distill', { epochs: 2, batchSize: 64 }));
  assert.deepEqual(a.perLayer.map((l) => l.selected), b.perLayer.map((l) => l.selected), 'same seed, same selection');
  a.perLayer.forEach((l, i) => {
    assert.deepEqual(l.scoresBefore, Array.from(randomScores(l.channels, 1, i)));
    assert.deepEqual(l.scoresAfter, l.scoresBefore, 'drawn once, fixed');
    assert.equal(l.selected.length, v.perLayer[i].selected.length, `${l.name}: as many channels as the variance metric selects`);
    assert.equal(l.selected.length, Math.round(0.5 * l.channels));
  });
  const differs = a.perLayer.filter((l, i) => l.selected.join() !== c.perLayer[i].selected.join()).length;
  assert.ok(differs >= 5, `another seed selects other channels (${differs} of ${a.perLayer.length} layers differ)`);
});

test('the controls are bn-distill with only the selection changed, and what cannot apply is refused', () => {
  const base: Record<string, unknown> = VARDEFENSE_PRESETS['bn-distill'];
  const diff = (name: string): Record<string, unknown> => Object.fromEntries(Object.entries(VARDEFENSE_PRESETS[name]).filter(([k, v]) => base[k] !== v));
  assert.deepEqual(diff('control-random'), { metric: 'random', statsMomentum: null });
  assert.deepEqual(diff('control-gamma'), { metric: 'weight', statsMomentum: null });
  assert.equal(VARDEFENSE_PRESETS['control-gamma'].measureAt, 'bn');
  assert.deepEqual(diff('control-mean'), { metric: 'mean' });
  assert.deepEqual(diff('control-lambda0'), { lambda: 0 });
  assert.deepEqual(diff('bn-distill-eval'), { statsSource: 'original-eval' });
  assert.equal(VARDEFENSE_PRESETS.default, VARDEFENSE_PRESETS['robust-mf02-gate'], 'the default since protocol section 12\'s step 4b (issue 27, rule-gate.js)');
  assert.equal((VARDEFENSE_PRESETS['bn-distill-eval'] as { statsSource: string }).statsSource, 'original-eval', 'the default before it keeps its meaning');
  for (const name of ['control-random', 'control-gamma', 'control-mean', 'control-lambda0']) assert.ok(resolveOptions(defenseMethod('vardefense'), name));
  assert.equal(Object.hasOwn(resolveOptions(defenseMethod('vardefense'), 'bn-distill'), 'statsSource'), false, 'existing presets resolve as before');

  const model = new ResNet18({ width: 4, inChannels: 1 });
  const empty = { images: randn([2, 1, 16, 16]), labels: tensor([0, 1], [2]).long(), classes: 10 };
  const data = { train: empty, val: empty, norm: PLANTED_NORM };
  assert.throws(() => varDefense(model, data, options('control-random', { statsMomentum: 0.9 })), /statsMomentum.*data-free random metric/);
  assert.throws(() => varDefense(model, data, options('control-random', { statsSource: 'original-eval' })), /statsSource.*data-free random metric/);
  assert.throws(() => varDefense(model, data, options('control-gamma', { statsSource: 'original-eval' })), /statsSource.*data-free weight metric/);
  assert.throws(() => varDefense(model, data, options('control-gamma', { measureAt: 'bn-relu' })), /measureAt.*bn-relu.*weight metric/);
  assert.throws(() => resolveOptions(defenseMethod('vardefense'), 'bn-distill', { statsSource: 'eval' }), /option 'statsSource' must be one of 'training', 'original-eval'/);
  assert.throws(() => resolveOptions(defenseMethod('vardefense'), 'bn-distill', { measureAt: 'relu' }), /option 'measureAt' must be one of 'conv', 'bn', 'bn-relu'/);
});
