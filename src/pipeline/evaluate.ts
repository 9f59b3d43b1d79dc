// ACC on a dataset's test split, and with a trigger ASR, RA and the clean->target floor.
import { nn } from '../torch';
import { AttackSpec } from '../attacks/poison';
import { datasetInfo, DatasetInfo, DatasetName, ImageSet, loadImageSet } from '../data/datasets';
import { evaluateModel, Metrics } from '../train/metrics';
import { inputInfo, loadModel, ModelSource } from './model';

export type { Metrics };

/** The model's test metrics (inputs normalised as `info` says); without an attack only ACC and per-class accuracy (asr, ra, cleanToTarget null). */
export function evaluate(model: nn.Module, dataset: DatasetName, attack: AttackSpec | null = null, dataDir?: string, info: DatasetInfo = datasetInfo(dataset)): Metrics {
  const test = loadImageSet(dataset, 'test', dataDir);
  try {
    return evaluateModel(model, test, info, attack);
  } finally {
    test.images.dispose();
    test.labels.dispose();
  }
}

/** Loads the weights and evaluates them on the dataset's test split, or on `test` (images of the dataset's shape; the caller keeps them). */
export function evaluateTarget(t: ModelSource & { attack?: AttackSpec | null; test?: ImageSet }, dataDir?: string): Metrics {
  const model = loadModel(t);
  try {
    if (t.test) return evaluateModel(model, t.test, inputInfo(t), t.attack ?? null);
    return evaluate(model, t.dataset, t.attack ?? null, dataDir, inputInfo(t));
  } finally {
    model.dispose();
  }
}
