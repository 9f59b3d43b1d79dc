// ACC, ASR, RA and per-class accuracy, from predictions.
import { nn, Tensor } from '../torch';
import { AttackSpec, triggeredTestSet } from '../attacks/poison';
import { ImageSet, Images, isChunks } from '../data/image-set';
import { Rng } from '../util/rng';
import { assertTestSetAllowed } from '../data/test-set-lock';
import { evalBatchSize, Normalization, normalize, predict } from './loop';
import { accuracyOf, perClassAccuracy } from './accuracy';

export { accuracyOf, perClassAccuracy } from './accuracy';

export interface Metrics {
  /** clean test accuracy */
  acc: number;
  /** attack success rate: triggered non-target images classified as the target */
  asr: number | null;
  /** robust accuracy: triggered images still classified as their true label */
  ra: number | null;
  /**
   * clean non-target test images classified as the target: what a model does without any trigger,
   * the floor under which ASR cannot be pushed by removing the backdoor alone (all-to-one only)
   */
  cleanToTarget: number | null;
  perClassAcc: number[];
  testImages: number;
}

/**
 * Triggered images given as they are, not made here from a trigger: the defender's own attack (any
 * trigger, any placement), each image with the class it is sent to and, when known, its true class.
 */
export interface GivenTriggered { kind: 'images'; images: Tensor; targetLabels: Tensor; trueLabels: Tensor | null }

const isGiven = (a: AttackSpec | GivenTriggered): a is GivenTriggered => (a as GivenTriggered).kind === 'images';

/**
 * The target of each true class that given triggered images imply: with true labels, the one class
 * every image of that class is sent to (null for a class sent to several); without, the single target
 * of all images (all-to-one), if there is one.
 */
function targetsOf(g: GivenTriggered, classes: number): (number | null)[] | null {
  const to = g.targetLabels.toList();
  if (!g.trueLabels) return to.every((t) => t === to[0]) ? new Array<number | null>(classes).fill(to[0]) : null;
  const from = g.trueLabels.toList(), map = new Array<number | null | undefined>(classes).fill(undefined);
  from.forEach((c, i) => { map[c] = map[c] === undefined || map[c] === to[i] ? to[i] : null; });
  return map.map((t) => t ?? null);
}

/**
 * Evaluates on the clean test set and, with an attack, on its triggered copy (or on the given triggered
 * images). The floor (cleanToTarget): clean test images not of their class's target that go to it, for a
 * trigger with one target per class (all-to-one, or given images whose true classes each have one).
 */
export function evaluateModel(model: nn.Module, test: Images, norm: Normalization, attack: AttackSpec | GivenTriggered | null,
  batchSize = evalBatchSize(isChunks(test) ? test.shape[2] : test.images.size(2)), chunk = CHUNK): Metrics {
  const prepare = (x: Tensor): Tensor => normalize(x, norm);
  // a set in memory is one chunk; a folder is read CHUNK images at a time, its triggered copies stamped
  // with one generator carried across the chunks (random placements as for the whole set at once)
  const chunks: Iterable<ImageSet> = isChunks(test) ? test.chunks(chunk) : [test];
  const y: number[] = [], preds: number[] = [], tp: number[] = [], tTarget: number[] = [], tTrue: number[] = [];
  const rng = attack && !isGiven(attack) ? new Rng(attack.seed + 1) : null;
  for (const c of chunks) {
    try {
      y.push(...(c.labels.toList() as number[]));
      preds.push(...predict(model, c.images, { batchSize, prepare }));
      if (attack && !isGiven(attack)) {
        const trig = triggeredTestSet(c.images, c.labels, attack, test.classes, rng!);
        tp.push(...predict(model, trig.images, { batchSize, prepare }));
        tTarget.push(...(trig.targetLabels.toList() as number[]));
        tTrue.push(...(trig.trueLabels.toList() as number[]));
        for (const t of Object.values(trig)) t.dispose();
      }
    } finally {
      if (c !== test) { c.images.dispose(); c.labels.dispose(); }
    }
  }
  const out: Metrics = { acc: accuracyOf(preds, y), asr: null, ra: null, cleanToTarget: null, perClassAcc: perClassAccuracy(preds, y, test.classes), testImages: y.length };
  if (!attack) return out;
  if (isGiven(attack)) {
    assertTestSetAllowed('given triggered images');
    const gp = predict(model, attack.images, { batchSize, prepare });
    out.asr = accuracyOf(gp, attack.targetLabels.toList());
    if (attack.trueLabels) out.ra = accuracyOf(gp, attack.trueLabels.toList());
    const targets = targetsOf(attack, test.classes);
    if (targets) {
      const others = y.flatMap((v, i) => (targets[v] !== null && targets[v] !== v ? [i] : []));
      out.cleanToTarget = others.length ? others.filter((i) => preds[i] === targets[y[i]]).length / others.length : null;
    }
    return out;
  }
  out.asr = accuracyOf(tp, tTarget);
  out.ra = accuracyOf(tp, tTrue);
  if (attack.mode === 'all-to-one') {
    const others = y.flatMap((v, i) => (v !== attack.target ? [i] : []));
    out.cleanToTarget = others.filter((i) => preds[i] === attack.target).length / others.length;
  }
  return out;
}

/** Images of a folder decoded at a time when evaluating on it (at 224x224 RGB, 75 MB). */
export const CHUNK = 500;
