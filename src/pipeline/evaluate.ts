// ACC on a dataset's test split, and with a trigger ASR, RA and the clean->target floor.
import { nn } from '../torch';
import { AttackSpec } from '../attacks/poison';
import { datasetInfo, DatasetName, loadImageSet } from '../data/datasets';
import { evaluateModel, Metrics } from '../train/metrics';
import { loadModel, ModelSource } from './model';

export type { Metrics };

/** The model's test metrics; without an attack only ACC and per-class accuracy (asr, ra, cleanToTarget null). */
export function evaluate(model: nn.Module, dataset: DatasetName, attack: AttackSpec | null = null, dataDir?: string): Metrics {
  const test = loadImageSet(dataset, 'test', dataDir);
  try {
    return evaluateModel(model, test, datasetInfo(dataset), attack);
  } finally {
    test.images.dispose();
    test.labels.dispose();
  }
}

/** Loads the weights and evaluates them. */
export function evaluateTarget(t: ModelSource & { attack?: AttackSpec | null }, dataDir?: string): Metrics {
  const model = loadModel(t);
  try {
    return evaluate(model, t.dataset, t.attack ?? null, dataDir);
  } finally {
    model.dispose();
  }
}
