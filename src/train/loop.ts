// Supervised training and evaluation loops over in-memory image tensors.
import { F, inferenceMode, nn, optim, randperm, scope, Tensor, tensor } from '../torch/compute';

export interface Normalization { mean: number[]; std: number[] }

/** uint8 [B, C, H, W] -> float32 normalised per channel. */
export function normalize(images: Tensor, norm: Normalization): Tensor {
  return scope(() => normalizeUnit(images.to('float32').div(255), norm));
}

/** normalize() for float pixel images already in [0, 1]. */
export function normalizeUnit(x: Tensor, norm: Normalization): Tensor {
  return scope(() => {
    const c = norm.mean.length;
    return x.sub(tensor(norm.mean, [1, c, 1, 1])).div(tensor(norm.std, [1, c, 1, 1]));
  });
}

/**
 * Images a forward pass takes when evaluating: 500 up to 32x32 (the datasets' sizes), fewer for larger
 * images so that a batch's activations stay near a 32x32 batch's (224x224: 16 images).
 */
export const evalBatchSize = (side: number): number => (side <= 32 ? 500 : Math.max(16, Math.floor((500 * 32 * 32) / (side * side))));

/** Calls `each(start, count)` over the first dimension of `images` [N, C, H, W] in batches of evalBatchSize(H). */
export function forEachEvalBatch(images: Tensor, each: (start: number, count: number) => void): void {
  const n = images.size(0), step = evalBatchSize(images.size(2));
  for (let s = 0; s < n; s += step) each(s, Math.min(step, n - s));
}

export interface BatchInfo { batch: number; batches: number; images: number; loss: number; correct: number }
export interface EpochStats { loss: number; accuracy: number; images: number; seconds: number; imagesPerSecond: number }

export interface TrainOptions {
  batchSize: number;
  norm: Normalization;
  /** turns a uint8 batch into model input (augmentation, normalisation); default: normalize */
  prepare?: (images: Tensor) => Tensor;
  onBatch?: (b: BatchInfo) => void;
}

/** One epoch of SGD over a random permutation (drawn from the global seed). */
export function trainEpoch(model: nn.Module, opt: optim.Optimizer, images: Tensor, labels: Tensor, o: TrainOptions): EpochStats {
  model.train();
  const n = images.size(0);
  const perm = randperm(n);
  const batches = Math.ceil(n / o.batchSize);
  const prepare = o.prepare ?? ((x: Tensor) => normalize(x, o.norm));
  let lossSum = 0, correct = 0;
  const t0 = performance.now();
  for (let b = 0; b < batches; b++) {
    const [loss, right, size] = scope(() => {
      const idx = perm.slice(0, b * o.batchSize, Math.min(n, (b + 1) * o.batchSize));
      const x = prepare(images.indexSelect(0, idx));
      const y = labels.indexSelect(0, idx);
      const out = model.call(x);
      const l = F.crossEntropy(out, y);
      l.backward();
      return [l.item(), out.argmax(1).eq(y).sum().item(), idx.numel] as const;
    });
    opt.step();
    opt.zeroGrad();
    lossSum += loss * size;
    correct += right;
    o.onBatch?.({ batch: b + 1, batches, images: size, loss, correct: right });
  }
  perm.dispose();
  const seconds = (performance.now() - t0) / 1000;
  return { loss: lossSum / n, accuracy: correct / n, images: n, seconds, imagesPerSecond: n / seconds };
}

/** Predicted classes for every image (eval mode, inference mode). */
export function predict(model: nn.Module, images: Tensor, o: { batchSize: number; prepare: (x: Tensor) => Tensor }): Int32Array {
  model.eval();
  const n = images.size(0);
  const preds = new Int32Array(n);
  inferenceMode(() => {
    for (let s = 0; s < n; s += o.batchSize) {
      const p = scope(() => model.call(o.prepare(images.narrow(0, s, Math.min(o.batchSize, n - s)))).argmax(1).to('int32'));
      preds.set(p.toArray() as Int32Array, s);
      p.dispose();
    }
  });
  return preds;
}
