// Augmentation in the shared fine-tuning loop: augmentBatch against a direct computation of the crop
// and flip from the same seeded draws, the loop feeding exactly those batches, and 'none' leaving the
// loop as it was. NAD under augmentation runs its teacher live on the augmented batch.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import { optim, scope, Tensor, tensor } from '../../src/torch';
import { normalize } from '../../src/train/loop';
import { augmentBatch, augmentRng, fineTune, FineTuneOptions, snapshot } from '../../src/defenses/common';
import { nad, NadOptions } from '../../src/defenses/nad';
import { varDefense, VarDefenseOptions } from '../../src/defenses/vardefense';
import { defenseMethod, resolveOptions } from '../../src/defenses/registry';
import { withoutTestSet } from '../../src/data/datasets';
import { Rng } from '../../src/util/rng';
import { planted, PLANTED_NORM } from '../fixtures/planted';

/** The crop (zero padding `pad`) and flip of uint8 images [n, c, h, w], computed pixel by pixel from `rng`'s draws in the documented order. */
function direct(images: number[], [n, c, h, w]: number[], flip: boolean, rng: Rng, pad = 4): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const top = rng.int(2 * pad + 1), left = rng.int(2 * pad + 1);
    const f = flip && rng.next() < 0.5;
    for (let ch = 0; ch < c; ch++) {
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const sy = y + top - pad, sx = (f ? w - 1 - x : x) + left - pad;
          out.push(sy >= 0 && sy < h && sx >= 0 && sx < w ? images[((i * c + ch) * h + sy) * w + sx] : 0);
        }
      }
    }
  }
  return out;
}

test('augmentBatch crops (and flips) exactly as the direct computation from the same seeded draws', () => {
  const shape = [6, 2, 5, 7];
  const values = Array.from({ length: 6 * 2 * 5 * 7 }, (_, i) => 1 + ((i * 37) % 250)); // no zeros: padding shows
  scope(() => {
    const images = tensor(values, shape).to('uint8');
    for (const [mode, flip] of [['crop', false], ['crop-flip', true]] as const) {
      for (const seed of [1, 2, 3]) {
        const got = augmentBatch(images, mode, new Rng(seed));
        assert.deepEqual(got.shape, shape);
        assert.equal(got.dtype, 'uint8');
        assert.deepEqual(got.toList(), direct(values, shape, flip, new Rng(seed)), `${mode}, seed ${seed}`);
      }
    }
    assert.equal(augmentBatch(images, 'none', new Rng(1)), images, "'none' is the batch itself");
    // the draws do move the images: some crops are off-centre, some images flipped
    assert.notDeepEqual(augmentBatch(images, 'crop', new Rng(1)).toList(), values);
  });
});

const base = (o: Partial<FineTuneOptions>): FineTuneOptions => ({ epochs: 2, lr: 0.01, batchSize: 64, momentum: 0.9, weightDecay: 5e-4, schedule: 'cosine', seed: 5, ...o });

/** The uint8 batches fineTune hands to `prepare`, and the model's state after it. */
function batchesSeen(o: FineTuneOptions): { batches: number[][]; state: Map<string, Tensor> } {
  const p = planted();
  const batches: number[][] = [];
  fineTune(p.model, p.data.train, PLANTED_NORM, o, {
    prepare: (x, y) => { batches.push(x.toList()); return [normalize(x, PLANTED_NORM), y]; },
  });
  return { batches, state: snapshot(p.model) };
}

test('fineTune feeds each batch augmented with the generator of (seed, epoch, batch); none feeds it as stored', () => {
  const p = planted();
  const n = p.data.train.labels.numel, bs = 64, batches = Math.ceil(n / bs);
  const expected = (augment: 'none' | 'crop-flip'): number[][] => {
    const out: number[][] = [];
    for (let epoch = 0; epoch < 2; epoch++) {
      const perm = new Rng(5 * 1009 + epoch).permutation(n);
      for (let b = 0; b < batches; b++) {
        scope(() => {
          const idx = tensor(Array.from(perm.slice(b * bs, Math.min(n, (b + 1) * bs))), [Math.min(n, (b + 1) * bs) - b * bs]).long();
          const imgs = p.data.train.images.indexSelect(0, idx);
          out.push(augment === 'none' ? imgs.toList() : direct(imgs.toList(), imgs.shape, true, augmentRng(5, epoch, b)));
        });
      }
    }
    return out;
  };
  const aug = batchesSeen(base({ augment: 'crop-flip' }));
  assert.deepEqual(aug.batches, expected('crop-flip'));
  const none = batchesSeen(base({ augment: 'none' }));
  assert.deepEqual(none.batches, expected('none'));
  // 'none' is the loop as before the option existed: the same batches and bit-identical weights
  const absent = batchesSeen(base({}));
  assert.deepEqual(absent.batches, none.batches);
  for (const [k, t] of none.state) assert.equal(scope(() => t.sub(absent.state.get(k)!).abs().amax().item()), 0, k);
  assert.ok([...aug.state].some(([k, t]) => scope(() => t.sub(none.state.get(k)!).abs().amax().item()) > 0), 'augmented batches train another model');
});

test('the step schedule multiplies the rate by 0.1 at each milestone, and needs milestones', () => {
  const p = planted();
  const lrs: number[] = [];
  fineTune(p.model, p.data.train, PLANTED_NORM, base({ epochs: 4, lr: 0.1, schedule: 'step', milestones: [2], nesterov: true }), {
    optimizer: (params) => {
      const opt = new optim.SGD(params, { lr: 0.1, momentum: 0.9, nesterov: true });
      const step = opt.step.bind(opt);
      opt.step = () => { lrs.push(opt.groups[0].lr); step(); };
      return opt;
    },
  });
  const per = Math.ceil(p.data.train.labels.numel / 64);
  assert.deepEqual(lrs.map((l) => Math.round(l * 1e6) / 1e6), [...Array(2 * per).fill(0.1), ...Array(2 * per).fill(0.01)]);
  assert.throws(() => fineTune(p.model, p.data.train, PLANTED_NORM, base({ schedule: 'step' })), /milestones/);
});

test('nad:published is the published schedule; under augmentation the live teacher leaves the student loop untouched', () => {
  const pub = resolveOptions(defenseMethod('nad'), 'published') as unknown as NadOptions;
  assert.deepEqual([pub.epochs, pub.teacherEpochs, pub.lr, pub.schedule, pub.milestones, pub.batchSize, pub.nesterov, pub.weightDecay, pub.betas, pub.augment],
    [20, 10, 0.1, 'step', [2], 64, true, 1e-4, [500, 1000, 1000], 'crop']);
  assert.equal((resolveOptions(defenseMethod('nad'), 'default') as Record<string, unknown>).augment, undefined, 'the default preset is unchanged');
  assert.equal(resolveOptions(defenseMethod('ft'), 'published').augment, 'crop');
  assert.equal(resolveOptions(defenseMethod('fine-pruning'), 'published').augment, 'crop');
  // the live teacher's pass leaves the student exactly as plain fine-tuning would (weights swapped back
  // bit for bit, running statistics untouched, train mode restored): with betas 0 the two coincide
  const q: NadOptions = { ...pub, epochs: 2, teacherEpochs: 1, lr: 0.01, batchSize: 32 };
  const p = planted();
  withoutTestSet(() => nad(p.model, p.data, { ...q, betas: [0, 0, 0] }));
  const live = snapshot(p.model);
  planted();
  fineTune(p.model, p.data.train, PLANTED_NORM, q);
  const plain = snapshot(p.model);
  for (const [k, t] of plain) assert.equal(scope(() => t.sub(live.get(k)!).abs().amax().item()), 0, k);
  // and with the published betas the teacher's maps on the augmented batches do pull the student elsewhere
  planted();
  withoutTestSet(() => nad(p.model, p.data, q));
  assert.ok([...plain].some(([k, t]) => scope(() => t.sub(p.model.stateDict().get(k)!).abs().amax().item()) > 1e-4), 'the attention term acts');
});

test('vardefense takes augment: absent from its presets, and the fine-tune then trains on the augmented batches', () => {
  const vd = defenseMethod('vardefense');
  for (const preset of Object.keys(vd.presets)) assert.ok(!('augment' in resolveOptions(vd, preset)), `${preset}: resolved options unchanged`);
  assert.equal(resolveOptions(vd, 'default', { augment: 'crop-flip' }).augment, 'crop-flip');
  assert.throws(() => resolveOptions(vd, 'default', { augment: 'rotate' }), /vardefense: option 'augment' must be one of 'none', 'crop', 'crop-flip', got 'rotate'/);
  // the model's train-mode inputs (the measurement pass and the live teacher run in eval mode); on
  // bn-distill-eval, whose batches are the clean images (robust, the default, stamps 15% of each)
  const o = (augment: string, distill: number): VarDefenseOptions =>
    resolveOptions(vd, 'bn-distill-eval', { augment, distill, epochs: 2, batchSize: 64, seed: 5 }) as unknown as VarDefenseOptions;
  const run = (opts: VarDefenseOptions): { inputs: number[][]; state: Map<string, Tensor> } => {
    const p = planted();
    const inputs: number[][] = [];
    const hook = p.model.registerForwardHook((m, x) => { if (m.training) inputs.push(x.toList()); });
    try { withoutTestSet(() => varDefense(p.model, p.data, opts)); } finally { hook.remove(); }
    return { inputs, state: snapshot(p.model) };
  };
  const p = planted();
  const n = p.data.train.labels.numel, batches = Math.ceil(n / 64);
  const expected: number[][] = [];
  for (let epoch = 0; epoch < 2; epoch++) {
    const perm = new Rng(5 * 1009 + epoch).permutation(n);
    for (let b = 0; b < batches; b++) {
      scope(() => {
        const idx = tensor(Array.from(perm.slice(b * 64, Math.min(n, (b + 1) * 64))), [Math.min(n, (b + 1) * 64) - b * 64]).long();
        expected.push(normalize(augmentBatch(p.data.train.images.indexSelect(0, idx), 'crop-flip', augmentRng(5, epoch, b)), PLANTED_NORM).toList());
      });
    }
  }
  const aug = run(o('crop-flip', 0));
  assert.equal(aug.inputs.length, expected.length);
  aug.inputs.forEach((x, i) => assert.ok(x.every((v, j) => Math.abs(v - expected[i][j]) < 1e-5), `batch ${i} is the augmented one`));
  const none = run(o('none', 0));
  assert.notDeepEqual(none.inputs, aug.inputs);
  // with distillation the original model runs live on each augmented batch: another model than without augmentation
  const distilled = run(o('crop-flip', 1)), plain = run(o('none', 1));
  assert.equal(distilled.inputs.length, expected.length, 'the teacher passes are not training passes');
  assert.ok([...distilled.state].some(([k, t]) => scope(() => t.sub(plain.state.get(k)!).abs().amax().item()) > 1e-4), 'augmented distillation trains another model');
});
