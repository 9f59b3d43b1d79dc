// ACC, ASR, RA and per-class accuracy, from predictions.
import { nn, Tensor } from '../torch';
import { AttackSpec, triggeredTestSet } from '../attacks/poison';
import { ImageSet } from '../data/image-set';
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

/** Evaluates on the clean test set and, with an attack, on its triggered copy. */
export function evaluateModel(model: nn.Module, test: ImageSet, norm: Normalization, attack: AttackSpec | null, batchSize = 500): Metrics {
  const prepare = (x: Tensor): Tensor => normalize(x, norm);
  const y = test.labels.toList();
  const preds = predict(model, test.images, { batchSize, prepare });
  const out: Metrics = { acc: accuracyOf(preds, y), asr: null, ra: null, cleanToTarget: null, perClassAcc: perClassAccuracy(preds, y, test.classes), testImages: y.length };
  if (attack) {
    const trig = triggeredTestSet(test.images, test.labels, attack, test.classes);
    const tp = predict(model, trig.images, { batchSize, prepare });
    out.asr = accuracyOf(tp, trig.targetLabels.toList());
    out.ra = accuracyOf(tp, trig.trueLabels.toList());
    for (const t of Object.values(trig)) t.dispose();
    if (attack.mode === 'all-to-one') {
      const others = y.flatMap((v, i) => (v !== attack.target ? [i] : []));
      out.cleanToTarget = others.filter((i) => preds[i] === attack.target).length / others.length;
    }
  }
  return out;
}
