// ACC, ASR, RA and per-class accuracy, from predictions.
import { nn, Tensor } from '../torch';
import { AttackSpec, triggeredTestSet } from '../attacks/poison';
import { ImageSet } from '../data/image-set';
import { assertTestSetAllowed } from '../data/test-set-lock';
import { Normalization, normalize, predict } from './loop';
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
export function evaluateModel(model: nn.Module, test: ImageSet, norm: Normalization, attack: AttackSpec | GivenTriggered | null, batchSize = 500): Metrics {
  const prepare = (x: Tensor): Tensor => normalize(x, norm);
  const y = test.labels.toList();
  const preds = predict(model, test.images, { batchSize, prepare });
  const out: Metrics = { acc: accuracyOf(preds, y), asr: null, ra: null, cleanToTarget: null, perClassAcc: perClassAccuracy(preds, y, test.classes), testImages: y.length };
  if (!attack) return out;
  if (isGiven(attack)) {
    assertTestSetAllowed('given triggered images');
    const tp = predict(model, attack.images, { batchSize, prepare });
    out.asr = accuracyOf(tp, attack.targetLabels.toList());
    if (attack.trueLabels) out.ra = accuracyOf(tp, attack.trueLabels.toList());
    const targets = targetsOf(attack, test.classes);
    if (targets) {
      const others = y.flatMap((v, i) => (targets[v] !== null && targets[v] !== v ? [i] : []));
      out.cleanToTarget = others.length ? others.filter((i) => preds[i] === targets[y[i]]).length / others.length : null;
    }
    return out;
  }
  const trig = triggeredTestSet(test.images, test.labels, attack, test.classes);
  const tp = predict(model, trig.images, { batchSize, prepare });
  out.asr = accuracyOf(tp, trig.targetLabels.toList());
  out.ra = accuracyOf(tp, trig.trueLabels.toList());
  for (const t of Object.values(trig)) t.dispose();
  if (attack.mode === 'all-to-one') {
    const others = y.flatMap((v, i) => (v !== attack.target ? [i] : []));
    out.cleanToTarget = others.filter((i) => preds[i] === attack.target).length / others.length;
  }
  return out;
}
