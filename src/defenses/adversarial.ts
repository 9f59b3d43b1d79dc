// Adversarial copies of the defender's clean images: untargeted PGD under an L_inf bound, in pixel
// space, on a fixed model. A backdoor is a short way into its target class, so on a backdoored model
// such perturbations land in the target class far more often than in any other, and a blended trigger
// (x + alpha (t - x)) lies inside the L_inf ball of radius alpha: fine-tuning the model to give the true
// label on these copies unlearns the shortcut without knowing it (as i-BAU and SAU do with
// perturbations found while unlearning). The class histogram of the flipped labels is also a detector
// (flipAnomaly). Reads only the images given.
import { cat, F, nn, noGrad, scope, Tensor, tensor } from '../torch/compute';
import { Normalization } from '../train/loop';
import { anomalyIndices } from './neural-cleanse';

export interface PgdOptions {
  /** L_inf bound, in pixel units of [0, 1] */
  eps: number;
  steps: number;
  /** signed-gradient step, in pixel units (default 2.5 eps / steps, Madry et al.) */
  stepSize?: number;
  batchSize: number;
}

export interface AdversarialSet {
  /** float32 pixel images in [0, 1], [N, C, H, W] */
  images: Tensor;
  /** the model's label for each perturbed image */
  labels: Int32Array;
  /** the model's label for each clean image */
  cleanLabels: Int32Array;
}

/**
 * PGD on `model` (eval mode, its parameters untouched): for each image, a perturbation in
 * [-eps, eps] that raises the cross-entropy of its label, starting from zero, clamped to valid pixels.
 * `progress` counts images.
 */
export function adversarialImages(model: nn.Module, images: Tensor, labels: Tensor, norm: Normalization, o: PgdOptions, progress?: (n: number, total: number) => void): AdversarialSet {
  const n = images.size(0);
  const c = norm.mean.length;
  const mean = tensor(norm.mean, [1, c, 1, 1]), std = tensor(norm.std, [1, c, 1, 1]);
  const step = o.stepSize ?? (2.5 * o.eps) / o.steps;
  const params = model.parameters();
  const wasTraining = model.training;
  model.eval();
  for (const p of params) p.requiresGrad_(false);
  const out: Tensor[] = [];
  const adv = new Int32Array(n), clean = new Int32Array(n);
  try {
    for (let s = 0; s < n; s += o.batchSize) {
      const m = Math.min(o.batchSize, n - s);
      out.push(scope(() => {
        const x0 = images.narrow(0, s, m).to('float32').div(255);
        const y = labels.narrow(0, s, m);
        const x = x0.clone();
        for (let k = 0; k < o.steps; k++) {
          scope(() => {
            const xv = x.detach().requiresGrad_(true);
            F.crossEntropy(model.call(xv.sub(mean).div(std)), y).backward();
            noGrad(() => {
              const next = xv.detach().add(xv.grad!.sign().mul(step));
              const d = next.sub(x0).clamp(-o.eps, o.eps);
              x.copy_(x0.add(d).clamp(0, 1));
            });
          });
        }
        noGrad(() => {
          adv.set(model.call(x.sub(mean).div(std)).argmax(1).toList(), s);
          clean.set(model.call(x0.sub(mean).div(std)).argmax(1).toList(), s);
        });
        return x;
      }));
      progress?.(m, n);
    }
  } finally {
    for (const p of params) p.requiresGrad_(true);
    if (wasTraining) model.train();
    mean.dispose();
    std.dispose();
  }
  const all = cat(out, 0);
  for (const t of out) t.dispose();
  return { images: all, labels: adv, cleanLabels: clean };
}

export interface FlipHistogram {
  /** per class: how many images the perturbation moved into it from another class */
  into: number[];
  /** images whose label changed, of all images */
  flipped: number;
  images: number;
  /** the class most flipped into, its share of the flips, and its anomaly index (MAD over classes, high side) */
  top: number;
  topShare: number;
  anomalyIndex: number;
}

/** Where the perturbations sent the images: a backdoor's target collects a large share of the flips. */
export function flipHistogram(set: AdversarialSet, classes: number): FlipHistogram {
  const into = new Array<number>(classes).fill(0);
  let flipped = 0;
  for (let i = 0; i < set.labels.length; i++) {
    if (set.labels[i] === set.cleanLabels[i]) continue;
    into[set.labels[i]]++;
    flipped++;
  }
  const top = into.indexOf(Math.max(...into));
  // anomalyIndices flags low outliers (NC's mask norms): the negated counts make a high count low
  const { index } = anomalyIndices(into.map((v) => -v), 2);
  return { into, flipped, images: set.labels.length, top, topShare: flipped ? into[top] / flipped : 0, anomalyIndex: index[top] };
}
