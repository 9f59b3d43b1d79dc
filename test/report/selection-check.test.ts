// Which channels a selection catches (issue 12): the trigger shift against a direct computation on a
// hand-built conv + BN, on the planted fixture with two stem channels made into detectors of its
// patch, and the coverage figures (recall, chance, percentile) on selections with and without them.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { nn, noGrad, scope, Tensor, tensor } from '../../src/torch';
import { applyTrigger } from '../../src/attacks/triggers';
import { convUnits } from '../../src/defenses/selection';
import { measuredOutput } from '../../src/defenses/vardefense';
import { imagesOutside, SHIFT_EPS, triggerShift } from '../../src/experiments/trigger-shift';
import { coverage } from '../../src/report/selection-check';
import { Rng } from '../../src/util/rng';
import { loadImageSet } from '../../src/data/datasets';
import { stratifiedDraw } from '../../src/pipeline/clean-data';
import { runCli, tinyTrainedRun, tmpDir } from '../helpers';
import { planted, PLANTED_NORM } from '../fixtures/planted';

const EPS = 1e-5; // BatchNorm2d's

/** Pixels of image i of the hand-built case (2x2, one channel) and the same with the trigger: pixel (1, 1) white. */
const PIXELS = [[0, 40, 80, 120], [200, 10, 30, 60], [90, 90, 90, 90], [5, 250, 100, 20], [60, 0, 255, 30]];
const stamped = (px: number[]): number[] => [px[0], px[1], px[2], 255];

/** The shift written out: spatial means of gamma * w * x / sqrt(1 + eps) + beta (optionally ReLU'd), population std over clean. */
function directShift(w: number, gamma: number, beta: number, relu: boolean): number {
  const out = (px: number[]): number => {
    const v = px.map((p) => gamma * (w * (p / 255)) / Math.sqrt(1 + EPS) + beta).map((y) => (relu ? Math.max(0, y) : y));
    return v.reduce((a, b) => a + b, 0) / v.length;
  };
  const clean = PIXELS.map(out), trig = PIXELS.map((p) => out(stamped(p)));
  const mean = (x: number[]): number => x.reduce((a, b) => a + b, 0) / x.length;
  const m = mean(clean);
  const std = Math.sqrt(mean(clean.map((v) => (v - m) ** 2)));
  return (mean(trig) - m) / (std + SHIFT_EPS);
}

test('triggerShift: the formula, written out, on a hand-built conv + BN (both signs, with and without ReLU, streamed in batches)', () => {
  const conv = new nn.Conv2d(1, 2, 1, { bias: false });
  const bn = new nn.BatchNorm2d(2);
  const model = new nn.Sequential(conv, bn);
  const [w, gamma, beta] = [[1.5, -1], [2, 0.7], [0.5, -0.1]];
  noGrad(() => {
    conv.weight.copy_(tensor(w, [2, 1, 1, 1]));
    bn.weight.copy_(tensor(gamma, [2]));
    bn.bias.copy_(tensor(beta, [2]));
  });
  const images = tensor(PIXELS.flat(), [PIXELS.length, 1, 2, 2]).to('uint8');
  const stamp = (b: Tensor): Tensor => scope(() => { const o = b.clone(); o.narrow(2, 1, 1).narrow(3, 1, 1).fill_(255); return o; });
  const norm = { mean: [0], std: [1] };
  for (const batchSize of [PIXELS.length, 2]) {
    const [bnOut, reluOut] = triggerShift(model, [{ module: bn, relu: false }, { module: bn, relu: true }], images, stamp, norm, batchSize);
    for (let c = 0; c < 2; c++) {
      const want = directShift(w[c], gamma[c], beta[c], false), wantRelu = directShift(w[c], gamma[c], beta[c], true);
      assert.ok(Math.abs(bnOut[c] - want) < 1e-4 * Math.abs(want), `batch ${batchSize} channel ${c}: ${bnOut[c]} vs ${want}`);
      assert.ok(Math.abs(reluOut[c] - wantRelu) < 1e-4 * Math.max(1, Math.abs(wantRelu)), `relu, batch ${batchSize} channel ${c}: ${reluOut[c]} vs ${wantRelu}`);
    }
    assert.ok(bnOut[0] > 0.5 && bnOut[1] < -0.5, `the sign is kept: ${Array.from(bnOut)}`);
    // channel 1 is negative on every pixel (w < 0, beta < 0): after ReLU it never moves
    assert.equal(reluOut[1], 0);
  }
  // eval mode inside (train-mode BN would normalise by each batch's statistics, not the running ones, and miss the formula), restored after
  assert.ok(model.training, 'the model is handed back in train mode, as it came');
  images.dispose();
  model.dispose();
});

/** The stem channels made into detectors of a bright 3x3 block: zero on clean images (their bars top out lower), large on the patch. */
const PLANTED_CHANNELS = [2, 5];
function plantDetectors(model: nn.Module): void {
  const conv = model.getModule('conv1') as nn.Conv2d, bn = model.getModule('bn1') as nn.BatchNorm2d;
  const white = (1 - PLANTED_NORM.mean[0]) / PLANTED_NORM.std[0];
  const gain = 1e4;
  noGrad(() => {
    for (const c of PLANTED_CHANNELS) {
      conv.weight.narrow(0, c, 1).fill_(1 / 9);
      bn.runningMean.narrow(0, c, 1).fill_(0);
      bn.runningVar.narrow(0, c, 1).fill_(1);
      bn.weight.narrow(0, c, 1).fill_(gain);
      // fires where the 3x3 mean is above 98.5% of white: the full patch, not the clean bars (160-255 each)
      bn.bias.narrow(0, c, 1).fill_(-gain * 0.985 * white);
    }
  });
}

test('on the planted fixture: the trigger shift ranks the planted detector channels first; recall 1 with them, 0 without', () => {
  const p = planted(1);
  plantDetectors(p.model);
  const units = convUnits(p.model);
  const images = imagesOutside(p.clean, p.attack.target);
  const rng = new Rng(p.attack.seed + 1);
  const shifts = triggerShift(p.model, units.map((u) => measuredOutput(u, 'bn-relu')), images, (b) => applyTrigger(b, p.attack.trigger, rng), PLANTED_NORM, 64);
  images.dispose();
  const flat = shifts.flatMap((s, layer) => Array.from(s, (v, c) => ({ v, layer, c }))).sort((a, b) => Math.abs(b.v) - Math.abs(a.v));
  const stem = units.findIndex((u) => u.name === 'conv1');
  assert.deepEqual(flat.slice(0, 2).map((x) => [x.layer, x.c]).sort(), PLANTED_CHANNELS.map((c) => [stem, c]), `top: ${JSON.stringify(flat.slice(0, 4))}`);
  assert.ok(flat[1].v > 0 && Math.abs(flat[1].v) > 10 * Math.abs(flat[2].v), `planted ${flat[1].v} vs next ${flat[2].v}`);
  // the backdoor trained into the rest of the network moves other channels too, far beyond noise
  assert.ok(Math.abs(flat[2].v) > 1, `the trained backdoor's largest shift: ${flat[2].v}`);

  const total = flat.length;
  const top = 2 / total;
  const none = units.map(() => [] as number[]);
  const withPlanted = none.map((_, i) => (i === stem ? [0, ...PLANTED_CHANNELS] : [1, 3]));
  const withoutPlanted = none.map((_, i) => (i === stem ? [0, 1, 3, 4, 6, 7] : [1, 3]));
  const oneOfThem = none.map((_, i) => (i === stem ? [PLANTED_CHANNELS[0]] : []));
  const a = coverage(shifts, withPlanted, top), b = coverage(shifts, withoutPlanted, top), c = coverage(shifts, oneOfThem, top);
  assert.equal(a.topCount, 2);
  assert.equal(a.recall, 1);
  assert.equal(b.recall, 0);
  assert.equal(c.recall, 0.5);
  assert.equal(a.chance, (3 + 2 * (units.length - 1)) / total);
  assert.equal(c.ratio, 0.5 / (1 / total));
  assert.equal(a.topPositive, 1);
  assert.equal(a.recallRaised, 1);
  assert.equal(a.recallLowered, null);
  // the planted channels hold the two largest ranks: the single-channel selection sits at one of them
  assert.ok(c.selectedPercentile! >= (total - 2) / (total - 1), `percentile ${c.selectedPercentile}`);
});

test('coverage: network-wide top by |shift|, ties by layer then channel; chance and percentile by average rank', () => {
  const shifts = [[0.1, -5, 0.2], [3, 0.1, -0.3, 4]];
  // |shift| ranks: -5 (L0c1), 4 (L1c3), 3 (L1c0) ... ; top 3 of 7 = round(0.4 * 7)
  const r = coverage(shifts, [[1], [0, 1]], 0.4);
  assert.equal(r.topCount, 3);
  assert.equal(r.recall, 2 / 3);
  assert.equal(r.chance, 3 / 7);
  assert.ok(Math.abs(r.ratio! - (2 / 3) / (3 / 7)) < 1e-12);
  assert.equal(r.topPositive, 2 / 3);
  // raised: 4 (not selected), 3 (selected); lowered: -5 (selected)
  assert.equal(r.recallRaised, 1 / 2);
  assert.equal(r.recallLowered, 1);
  assert.equal(coverage([[1, 2]], [[1]], 0.5).recallLowered, null);
  // ascending |shift|: 0.1 (L0c0), 0.1 (L1c1) tie at ranks 0-1 -> 0.5; ..., 3 -> 4, 5 -> 6; of n - 1 = 6
  assert.ok(Math.abs(r.selectedPercentile! - (6 / 6 + 4 / 6 + 0.5 / 6) / 3) < 1e-12, `${r.selectedPercentile}`);
  // ties at the cut: the earlier layer and channel first
  assert.equal(coverage([[1, 1], [1]], [[0], []], 1 / 3).recall, 1);
  assert.equal(coverage([[1, 1], [1]], [[1], [0]], 1 / 3).recall, 0);
  assert.equal(coverage([[1, 2]], [[]], 0.5).ratio, null);
  assert.throws(() => coverage([[1, 2]], [[2]], 0.5), /selected channel 2 of layer 0 is outside 0..1/);
  assert.throws(() => coverage([[1]], [[0]], 0), /top must be in \(0, 1\]/);
});

test('selection-check end to end: a trained run, two VarDefense reports, the table and the per-model rows', () => {
  const root = tmpDir('selection-check');
  const { data, runDir } = tinyTrainedRun(root, { train: 2000, test: 200 });
  runCli('defend', '--run', runDir, '--data-dir', data, '--method', 'vardefense:bn-distill,vardefense:control-random,ft', '--set', 'epochs=1', '--set', 'batchSize=50', '--no-verdict');
  const out = JSON.parse(runCli('selection-check', path.join(runDir, 'defenses'), '--data-dir', data, '--top', '0.1', '--json'));
  assert.equal(out.top, 0.1);
  assert.deepEqual(out.rows.map((r: { column: string }) => r.column).sort(), ['vardefense:bn-distill (epochs=1 batchSize=50)', 'vardefense:control-random (epochs=1 batchSize=50)'], 'ft has no selection');
  // the run's clean split (attack.json's indices into the training split), its images outside the target class
  const attack = JSON.parse(fs.readFileSync(path.join(runDir, 'attack.json'), 'utf8'));
  const labels = loadImageSet('mnist', 'train', data).labels.toList();
  const nonTarget = (attack.cleanIndices as number[]).filter((i) => labels[i] !== 0).length;
  // width 4: the last 10 convs are layer3 and layer4, 5 x 16 + 5 x 32 channels
  for (const r of out.rows) {
    assert.equal(r.images, nonTarget);
    assert.ok(nonTarget > 50 && nonTarget < 100, `${nonTarget} of 100 clean images`);
    assert.equal(r.channels, 240);
    assert.equal(r.topCount, 24);
    assert.equal(r.chance, 0.5, 'one epoch: the threshold is at maxFraction');
    assert.ok(r.recall >= 0 && r.recall <= 1 && r.selectedPercentile > 0 && r.selectedPercentile < 1);
    assert.equal(r.ratio, r.recall / r.chance);
  }
  const random = out.summary.find((s: { column: string }) => s.column.startsWith('vardefense:control-random'));
  const variance = out.summary.find((s: { column: string }) => s.column.startsWith('vardefense:bn-distill'));
  assert.equal(random.recallAboveRandom, null);
  assert.equal(variance.recallAboveRandom.of, 1);
  const md = runCli('selection-check', path.join(runDir, 'defenses'), '--data-dir', data);
  assert.match(md, /\| vardefense:bn-distill \(epochs=1 batchSize=50\) \| 1 \| [0-9.]+ ± - \| 50\.0 ± - \|/);
  const csv = runCli('selection-check', path.join(runDir, 'defenses'), '--data-dir', data, '--format', 'csv').trim().split('\n');
  assert.equal(csv.length, 3);
  assert.ok(csv[0].startsWith('defense,models,recallMean,recallStd,chanceMean'));
  // a model defended with --weights and a seeded clean draw: its weights, target and draw stand in for the run
  const weightsOut = path.join(root, 'weights-defended');
  const weights = path.join(runDir, 'model.safetensors');
  runCli('defend', '--weights', weights, '--model', 'resnet18', '--width', '4', '--dataset', 'mnist', '--data-dir', data, '--clean-size', '120', '--clean-seed', '3', '--no-verdict',
    '--attack', 'patch', '--trigger-size', '3', '--method', 'vardefense:bn-distill', '--set', 'epochs=1', '--set', 'batchSize=50', '--out', weightsOut);
  const byWeights = JSON.parse(runCli('selection-check', weightsOut, '--data-dir', data, '--top', '0.1', '--json'));
  const drawn = stratifiedDraw(labels as number[], 10, 120, 3);
  assert.equal(byWeights.rows.length, 1);
  assert.equal(byWeights.rows[0].model, weights);
  assert.equal(byWeights.rows[0].images, Array.from(drawn).filter((i) => labels[i] !== 0).length, 'the draw of --clean-size 120 --clean-seed 3, outside the target class');
  assert.equal(byWeights.rows[0].channels, 240);
  const wFile = path.join(weightsOut, 'vardefense-bn-distill', 'report.json');
  const wReport = JSON.parse(fs.readFileSync(wFile, 'utf8'));
  fs.writeFileSync(wFile, JSON.stringify({ ...wReport, source: { ...wReport.source, clean: { kind: 'images', size: 120, path: '/x/clean' } } }));
  assert.throws(() => runCli('selection-check', weightsOut, '--data-dir', data), /report\.json: the clean data was the caller's own images \(\/x\/clean\); the shift needs a --clean-size draw or a training run/);

  const file = path.join(runDir, 'defenses', 'vardefense-bn-distill', 'report.json');
  const report = JSON.parse(fs.readFileSync(file, 'utf8'));
  fs.writeFileSync(file, JSON.stringify({ ...report, source: { ...report.source, run: path.join(root, 'moved') } }));
  assert.throws(() => runCli('selection-check', path.join(runDir, 'defenses'), '--data-dir', data), /vardefense-bn-distill[/\\]report\.json: its model's run .*moved: .*no config\.json there/);
  fs.rmSync(path.join(runDir, 'defenses', 'vardefense-bn-distill'), { recursive: true });
  fs.rmSync(path.join(runDir, 'defenses', 'vardefense-control-random'), { recursive: true });
  assert.throws(() => runCli('selection-check', path.join(runDir, 'defenses'), '--data-dir', data), /no VarDefense report.json under/);
  assert.throws(() => runCli('selection-check', runDir, '--top', '2'), /--top must be a number in \(0, 1\)/);
  fs.rmSync(root, { recursive: true });
});
