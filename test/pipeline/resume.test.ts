// A defense killed partway goes on from its last finished epoch with the numbers of an unbroken run:
// fineTune's per-epoch state (model, optimiser, the hooks' records), and defend's checkpoints, which are
// kept only for the same inputs and removed with the report.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { writeSyntheticIdx } from '../../src/data/synthetic';
import { EpochCheckpoint, fineTune } from '../../src/defenses/common';
import { EpochState } from '../../src/train/epoch-state';
import { createModel } from '../../src/models';
import { DefenseCheckpoints } from '../../src/pipeline/checkpoints';
import { defend, DefendOutcome } from '../../src/pipeline/defend';
import { loadSafetensors, manualSeed, saveSafetensors, tensor, Tensor } from '../../src/torch';
import { DEFAULT_TRAIN, train, TrainConfig } from '../../src/train/run';
import { tmpDir } from '../helpers';

const NORM = { mean: [0.5], std: [0.5] };

/** A small training set: 60 images of 12x12, 10 classes. */
function tinySet(): { images: Tensor; labels: Tensor; classes: number } {
  const n = 60;
  return {
    images: tensor(Uint8Array.from({ length: n * 144 }, (_, i) => (i * 37 + Math.floor(i / 144) * 11) % 256), [n, 1, 12, 12]),
    labels: tensor(Float64Array.from({ length: n }, (_, i) => i % 10), [n]).long(), classes: 10,
  };
}

function tinyModel() {
  manualSeed(3);
  return createModel({ name: 'small-cnn', inChannels: 1, numClasses: 10, imageSize: 12 });
}

/** Checkpoints in memory: every save kept (copied), and `load` gives the one after epoch `from`. */
function memoryCheckpoint(from?: number): EpochCheckpoint & { saved: EpochState[] } {
  const saved: EpochState[] = [];
  const copy = (m: Map<string, Tensor>): Map<string, Tensor> => new Map([...m].map(([k, v]) => [k, v.detach().clone()]));
  return {
    saved,
    load: () => {
      const s = saved.find((x) => x.epoch === from);
      return s ? { ...s, model: copy(s.model), optimizer: copy(s.optimizer) } : null;
    },
    save: (s) => { saved.push({ ...s, model: copy(s.model), optimizer: copy(s.optimizer), extra: JSON.parse(JSON.stringify(s.extra)) }); },
  };
}

const weightsOf = (m: ReturnType<typeof tinyModel>): Map<string, number[]> => new Map([...m.stateDict()].map(([k, v]) => [k, v.toList()]));

test('fineTune resumed after an epoch ends with the weights of an unbroken run, bit for bit; without the optimiser state it does not', () => {
  const data = tinySet();
  const o = { epochs: 3, lr: 0.05, batchSize: 16, momentum: 0.9, weightDecay: 5e-4, schedule: 'cosine' as const, seed: 7, augment: 'crop' as const };
  const perEpoch: number[] = [];
  const record = { save: () => perEpoch.slice(), load: (v: unknown) => { perEpoch.push(...(v as number[])); } };
  const hooks = (ck: EpochCheckpoint) => ({ resumable: true, epochCheckpoint: () => ck, epochState: record, afterStep: (s: { batch: number; batches: number; epoch: number }) => { if (s.batch === s.batches - 1) perEpoch.push(s.epoch); } });

  const unbroken = tinyModel();
  const all = memoryCheckpoint();
  fineTune(unbroken, data, NORM, o, hooks(all));
  assert.deepEqual(all.saved.map((s) => s.epoch), [1, 2, 3]);
  assert.deepEqual(perEpoch, [0, 1, 2]);
  const want = weightsOf(unbroken);

  // resumed after epoch 1 from a fresh model: the hooks' record comes back and the last two epochs run
  const resumed = tinyModel();
  const after1 = memoryCheckpoint(1);
  after1.saved.push(all.saved[0]);
  perEpoch.length = 0;
  const logs: string[] = [];
  fineTune(resumed, data, NORM, o, { ...hooks(after1), log: (l) => logs.push(l) });
  assert.deepEqual(perEpoch, [0, 1, 2], 'the saved record, then the epochs run');
  assert.match(logs.join('\n'), /resumed after epoch 1 of 3/);
  assert.deepEqual(weightsOf(resumed), want);

  // the control: the same weights after epoch 1 but momentum started afresh end elsewhere
  const noMomentum = tinyModel();
  const partial = memoryCheckpoint(1);
  partial.saved.push({ ...all.saved[0], optimizer: new Map() });
  perEpoch.length = 0;
  fineTune(noMomentum, data, NORM, o, hooks(partial));
  const other = weightsOf(noMomentum);
  assert.ok([...want].some(([k, v]) => v.some((x, i) => x !== other.get(k)![i])), 'the optimiser state is what makes the resumed run exact');
  // a checkpoint of every epoch skips the call: the saved weights, nothing trained
  const skipped = tinyModel();
  const done = memoryCheckpoint(3);
  done.saved.push(all.saved[2]);
  perEpoch.length = 0;
  fineTune(skipped, data, NORM, o, hooks(done));
  assert.deepEqual(weightsOf(skipped), want);
  assert.equal(done.saved.length, 1, 'nothing saved again');
  for (const m of [unbroken, resumed, noMomentum, skipped]) m.dispose();
});

// a backdoored width-4 ResNet-18 on a synthetic MNIST, trained once for the defend tests below
const root = tmpDir('resume');
const dataDir = path.join(root, 'data');
writeSyntheticIdx(path.join(dataDir, 'mnist'), { train: 800, test: 100 });
const cfg: TrainConfig = {
  ...DEFAULT_TRAIN, dataset: 'mnist', model: 'resnet18', width: 4, epochs: 1, batchSize: 32, lr: 0.02, evalEachEpoch: false, cleanFraction: 0.25,
  attack: { trigger: { kind: 'patch', size: 3, pattern: 'white', position: 'fixed', offset: [0, 0], seed: 1 }, poisonRatio: 0.1, target: 0, mode: 'all-to-one', seed: 1 },
};
const runDir = path.join(root, 'run');
train(cfg, runDir, { dataDir }).model.dispose();

/** Runs one method on the run into `out`; with `killAt` (a fraction of the stage `stage`'s images) it throws there, as a kill would stop it. */
function defendOnce(method: string, overrides: Record<string, unknown>, out: string, kill?: { stage: string; at: number }): { outcome: DefendOutcome; logs: string[] } {
  const logs: string[] = [];
  let seen = 0;
  const stages = () => ({
    log: (l: string) => logs.push(l),
    progress: (stage: string, images: number, total: number) => {
      if (kill?.stage !== stage) return;
      seen += images;
      if (seen > kill.at * total) throw new Error('killed');
    },
    stop: () => undefined,
  });
  const [outcome] = defend({ run: runDir, methods: method, overrides, out, dataDir, verdict: false, hooks: { log: (l) => logs.push(l), stages } });
  return { outcome, logs };
}

const tensorsOf = (file: string): Map<string, number[]> => {
  const { tensors } = loadSafetensors(file);
  const out = new Map([...tensors].map(([k, v]) => [k, v.toList()]));
  for (const t of tensors.values()) t.dispose();
  return out;
};

for (const [method, overrides, kill, resumedLine] of [
  ['sau', { epochs: 3, batchSize: 64 }, { stage: 'sau', at: 0.8 }, /sau: resumed after epoch 2 of 3/],
  // two fine-tune calls: the teacher's, finished, is loaded whole; the student's goes on after its first epoch
  ['nad', { epochs: 2, teacherEpochs: 2, batchSize: 64 }, { stage: 'nad student', at: 0.7 }, /nad student: resumed after epoch 1 of 2/],
] as const) {
  test(`${method} killed partway resumes from its checkpoints to the unbroken run's weights and report; the checkpoints go with the report`, () => {
    const unbroken = defendOnce(method, overrides, path.join(root, `${method}-unbroken`)).outcome;
    const out = path.join(root, `${method}-killed`);
    assert.throws(() => defendOnce(method, overrides, out, kill), /killed/);
    const ckDir = path.join(out, method, 'checkpoints');
    assert.ok(fs.readdirSync(ckDir).some((f) => f.endsWith('.safetensors')), 'checkpoints left by the killed run');
    assert.ok(!fs.existsSync(path.join(out, method, 'report.json')));

    const { outcome, logs } = defendOnce(method, overrides, out);
    assert.match(logs.join('\n'), resumedLine);
    assert.deepEqual(tensorsOf(path.join(out, method, 'model.safetensors')), tensorsOf(path.join(unbroken.dir, 'model.safetensors')));
    const strip = ({ seconds: _s, ...r }: { seconds: number }) => r;
    assert.deepEqual(strip(outcome.report), strip(unbroken.report), 'the same report (per-epoch records included), time aside');
    assert.deepEqual(outcome.after, unbroken.after);
    assert.ok(outcome.resumedAfterSeconds! > 0 && outcome.report.seconds > outcome.resumedAfterSeconds!, 'the killed run\'s time is counted');
    assert.equal(unbroken.resumedAfterSeconds, undefined);
    assert.ok(!fs.existsSync(ckDir), 'checkpoints removed once the report is written');
  });
}

test('checkpoints of other inputs are dropped; a damaged one is refused naming the file', () => {
  const dir = path.join(root, 'store');
  const a = new DefenseCheckpoints(dir, 'digest-a');
  const model = new Map([['w', tensor([1, 2, 3], [3])]]);
  a.next('fine-tune').save({ epoch: 1, model, optimizer: new Map(), stepCount: 4, extra: [0.5] });
  const file = path.join(dir, '0-fine-tune.safetensors');
  assert.ok(fs.existsSync(file));

  const same = new DefenseCheckpoints(dir, 'digest-a');
  assert.ok(same.priorSeconds > 0);
  const s = same.next('fine-tune').load(3)!;
  assert.deepEqual([s.epoch, s.stepCount, s.extra, s.model.get('w')!.toList()], [1, 4, [0.5], [1, 2, 3]]);
  assert.equal(same.next('fine-tune').load(3), null, 'the second call has no checkpoint');
  assert.throws(() => new DefenseCheckpoints(dir, 'digest-a').next('fine-tune').load(0), new RegExp(`${file.replace(/[.]/g, '\\.')}: metadata 'epoch' must be an integer in 1\\.\\.0`));

  saveSafetensors(file, { 'model.w': tensor([1], [1]), 'other.x': tensor([1], [1]) }, { epoch: '1', stepCount: '1', extra: 'null' });
  assert.throws(() => new DefenseCheckpoints(dir, 'digest-a').next('fine-tune').load(3), /0-fine-tune\.safetensors: unexpected tensor 'other\.x'/);
  fs.writeFileSync(file, 'not a checkpoint');
  assert.throws(() => new DefenseCheckpoints(dir, 'digest-a').next('fine-tune').load(3), /0-fine-tune\.safetensors/);

  const other = new DefenseCheckpoints(dir, 'digest-b');
  assert.equal(other.priorSeconds, 0);
  assert.ok(!fs.existsSync(file), 'another input digest: the old checkpoints are removed');
  const fresh = new DefenseCheckpoints(dir, 'digest-a', true);
  assert.equal(fresh.priorSeconds, 0);
});

test.after(() => fs.rmSync(root, { recursive: true, force: true }));
