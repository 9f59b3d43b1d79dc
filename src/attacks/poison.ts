// Poisoning a training set and building the triggered test set for ASR / RA.
import { scope, Tensor, tensor } from '../torch';
import { Rng } from '../util/rng';
import { inRange, numberThat, SpecIssue, specIssues } from '../util/validation';
import { z } from 'zod';
import { applyTrigger, BLEND_SCHEMA, TRIGGER_SCHEMA } from './triggers';
import { validateSig } from './sig';
import { applyWanet, validateWanet } from './wanet';
import { validateImageTrigger } from './image-trigger';
import { assertTestSetAllowed } from '../data/test-set-lock';
import { datasetInfo } from '../data/datasets';

/** An attack as a training run records it (config.json's attack): its trigger, and how the training set was poisoned. */
export const ATTACK_SPEC_SCHEMA = z.object({
  trigger: TRIGGER_SCHEMA,
  /** fraction of the attacker's training samples that are poisoned */
  poisonRatio: inRange('(0, 1)').gt(0).lt(1),
  /** all-to-one target class (one of the dataset's: attackIssues) */
  target: numberThat('an integer >= 0').int().min(0),
  mode: z.enum(['all-to-one', 'all-to-all']),
  seed: z.number().int().min(0),
});
export type AttackSpec = z.infer<typeof ATTACK_SPEC_SCHEMA>;
export type TargetMode = AttackSpec['mode'];


export const DEFAULT_ATTACK: Omit<AttackSpec, 'trigger'> = { poisonRatio: 0.05, target: 0, mode: 'all-to-one', seed: 1 };

/** What in an attack the dataset rules out (image size, class count) or that no attack can have; empty when it is usable. */
export function attackIssues(a: AttackSpec, dataset: string): SpecIssue[] {
  const { size, classes } = datasetInfo(dataset);
  const issues: SpecIssue[] = [];
  const t = a.trigger;
  const check = (path: string, validate: () => void): void => {
    try { validate(); } catch (e) { issues.push({ path, message: (e as Error).message.replace(/^trigger: /, '') }); }
  };
  if (t.kind === 'blend') {
    issues.push(...specIssues(BLEND_SCHEMA, t, 'trigger'));
  } else if (t.kind === 'sig') {
    check('trigger', () => validateSig(t));
    if (a.mode === 'all-to-all') issues.push({ path: 'mode', message: 'SIG is clean-label (target-class images keep their labels): it cannot be all-to-all' });
  } else if (t.kind === 'wanet') {
    check('trigger', () => validateWanet(t, size, size));
  } else if (t.kind === 'image') {
    check('trigger', () => validateImageTrigger(t, size, size, datasetInfo(dataset).channels));
  } else if (!(Number.isInteger(t.size) && t.size >= 1 && t.size <= size)) {
    issues.push({ path: 'trigger.size', message: `must be an integer in 1..${size} (${dataset} images are ${size}x${size}), got ${t.size}` });
  } else if (t.position === 'fixed') {
    const [dx, dy] = t.offset ?? [0, 0];
    const max = size - t.size;
    if (!(dx >= 0 && dy >= 0 && dx <= max && dy <= max))
      issues.push({ path: 'trigger.offset', message: `${dx},${dy} puts the ${t.size}x${t.size} patch outside the ${size}x${size} ${dataset} images (each must be in 0..${max})` });
  }
  issues.push(...specIssues(ATTACK_SPEC_SCHEMA.shape.poisonRatio, a.poisonRatio, 'poisonRatio'));
  if (!(Number.isInteger(a.target) && a.target >= 0 && a.target < classes))
    issues.push({ path: 'target', message: `must be a class of ${dataset}, 0..${classes - 1}, got ${a.target}` });
  return issues;
}

export function targetLabel(y: number, a: AttackSpec, classes: number): number {
  return a.mode === 'all-to-one' ? a.target : (y + 1) % classes;
}

export interface PoisonedSet {
  images: Tensor; labels: Tensor; poisonedIndices: Int32Array;
  /** WaNet noise-mode images: warped with grid noise, kept at their true labels (empty otherwise) */
  crossIndices: Int32Array;
}

/**
 * Poisons round(ratio * N) samples chosen at random among those whose label differs from the target
 * (all-to-one; every sample is eligible all-to-all): stamps the trigger and relabels them.
 * SIG is clean-label: it stamps round(ratio * N_target) target-class samples and keeps every label,
 * the ratio counted among target-class samples as BackdoorBench does. WaNet adds round(crossRatio *
 * poisoned) noise-mode samples drawn from the rest, warped with per-image grid noise at their true labels.
 */
export function poisonTrainingSet(images: Tensor, labels: Tensor, a: AttackSpec, classes: number): PoisonedSet {
  assertTestSetAllowed('poisoning a training set');
  if (!(a.poisonRatio >= 0 && a.poisonRatio <= 1)) throw new Error(`poison ratio must be in [0, 1], got ${a.poisonRatio}`);
  if (!Number.isInteger(a.target) || a.target < 0 || a.target >= classes) throw new Error(`target class must be in 0..${classes - 1}, got ${a.target}`);
  const cleanLabel = a.trigger.kind === 'sig';
  if (cleanLabel && a.mode !== 'all-to-one') throw new Error('the SIG attack is clean-label: it needs all-to-one mode (a single target class)');
  const y = labels.toList();
  const rng = new Rng(a.seed);
  const order = [...rng.permutation(y.length)];
  const eligible = order.filter((i) => (cleanLabel ? y[i] === a.target : a.mode === 'all-to-all' || y[i] !== a.target));
  const count = Math.round(a.poisonRatio * (cleanLabel ? eligible.length : y.length));
  if (count > eligible.length) throw new Error(`cannot poison ${count} samples: only ${eligible.length} are not of the target class`);
  const chosen = Int32Array.from(eligible.slice(0, count)).sort();
  let cross = new Int32Array(0);
  if (a.trigger.kind === 'wanet') {
    const taken = new Set(chosen);
    const rest = order.filter((i) => !taken.has(i));
    const crossCount = Math.round(a.trigger.crossRatio * count);
    if (crossCount > rest.length) throw new Error(`cannot add ${crossCount} WaNet noise-mode samples (cross ratio ${a.trigger.crossRatio}): only ${rest.length} samples are left`);
    cross = Int32Array.from(rest.slice(0, crossCount)).sort();
  }
  const out = scope(() => {
    const idx = tensor(chosen, [count]).long();
    const stamped = applyTrigger(images.indexSelect(0, idx), a.trigger, rng);
    const newImages = images.clone().indexPut_([idx], stamped);
    if (a.trigger.kind === 'wanet' && cross.length > 0) {
      const cidx = tensor(cross, [cross.length]).long();
      newImages.indexPut_([cidx], applyWanet(images.indexSelect(0, cidx), a.trigger, rng));
    }
    const newY = y.slice();
    if (!cleanLabel) for (const i of chosen) newY[i] = targetLabel(y[i], a, classes);
    return { images: newImages, labels: tensor(Float64Array.from(newY), [y.length]).long() };
  });
  return { ...out, poisonedIndices: chosen, crossIndices: cross };
}

export interface TriggeredTestSet {
  /** triggered copies of the test images whose label is not already the attack's output */
  images: Tensor;
  /** the attacker's labels (for ASR) */
  targetLabels: Tensor;
  /** the true labels (for RA) */
  trueLabels: Tensor;
}

/**
 * Triggered test images for ASR/RA; all-to-one drops images of the target class. `seed` or, for a test
 * set stamped a chunk at a time, one generator carried from chunk to chunk (the same images as one call).
 */
export function triggeredTestSet(images: Tensor, labels: Tensor, a: AttackSpec, classes: number, seed: number | Rng = a.seed + 1): TriggeredTestSet {
  assertTestSetAllowed('triggered test set');
  const y = labels.toList();
  const keep = Int32Array.from(y.map((v, i) => (a.mode === 'all-to-all' || v !== a.target ? i : -1)).filter((i) => i >= 0));
  return scope(() => {
    const idx = tensor(keep, [keep.length]).long();
    const stamped = applyTrigger(images.indexSelect(0, idx), a.trigger, typeof seed === 'number' ? new Rng(seed) : seed);
    const trueY = Array.from(keep, (i) => y[i]);
    return {
      images: stamped,
      targetLabels: tensor(Float64Array.from(trueY, (v) => targetLabel(v, a, classes)), [keep.length]).long(),
      trueLabels: tensor(Float64Array.from(trueY), [keep.length]).long(),
    };
  });
}
