// ACC on a dataset's test split, and with a trigger ASR, RA and the clean->target floor.
import { assertPrecision, nn, Precision, withPrecision } from '../torch';
import { AttackSpec } from '../attacks/poison';
import { datasetInfo, DatasetInfo, DatasetSpec, loadImageSet } from '../data/datasets';
import { evaluateModel, GivenTriggered, Metrics } from '../train/metrics';
import type { Images } from '../data/image-set';
import { inputInfo, loadModel, ModelSource } from './model';

export type { Metrics };

/** The model's test metrics (inputs normalised as `info` says); without an attack only ACC and per-class accuracy (asr, ra, cleanToTarget null). */
export function evaluate(model: nn.Module, dataset: DatasetSpec, attack: AttackSpec | GivenTriggered | null = null, dataDir?: string, info: DatasetInfo = datasetInfo(dataset)): Metrics {
  const test = loadImageSet(dataset, 'test', dataDir);
  try {
    return evaluateModel(model, test, info, attack);
  } finally {
    test.images.dispose();
    test.labels.dispose();
  }
}

/**
 * Loads the weights and evaluates them on the dataset's test split, or on `test` (images of the dataset's
 * shape; the caller keeps them), in `precision` (default fp32; bf16 is refused where it cannot run well).
 */
export function evaluateTarget(t: ModelSource & { attack?: AttackSpec | GivenTriggered | null; test?: Images; precision?: Precision }, dataDir?: string): Metrics {
  assertPrecision(t.precision ?? 'fp32');
  const model = loadModel(t);
  try {
    return withPrecision(t.precision, () => t.test ? evaluateModel(model, t.test, inputInfo(t), t.attack ?? null)
      : evaluate(model, t.dataset, t.attack ?? null, dataDir, inputInfo(t)));
  } finally {
    model.dispose();
  }
}
