// An epoch's state in one safetensors file: the model's tensors (model.*) and the optimiser's (optim.*),
// with the epoch, the optimiser's step count and the run's records (JSON, under `recordKey`) as metadata.
// `vardefense train` keeps one per run, a defense one per fine-tune call (src/pipeline/checkpoints.ts).
import { loadSafetensors, saveSafetensors, Tensor } from '../torch';
import { EpochState } from './epoch-state';

export interface CheckpointFormat {
  /** the metadata key of the records */
  recordKey: string;
  /** what the user can do about a file that is not one, for errors */
  startOver: string;
}

export function saveEpochState(file: string, s: EpochState, f: CheckpointFormat): void {
  const tensors = new Map<string, Tensor>();
  for (const [k, v] of s.model) tensors.set(`model.${k}`, v);
  for (const [k, v] of s.optimizer) tensors.set(`optim.${k}`, v);
  saveSafetensors(file, tensors, { epoch: String(s.epoch), stepCount: String(s.stepCount), [f.recordKey]: JSON.stringify(s.extra) });
}

/** The state saved in `file` after epoch 1..`epochs`, every field checked; errors name the file. */
export function readEpochState(file: string, epochs: number, f: CheckpointFormat): EpochState {
  const { tensors, metadata } = loadSafetensors(file);
  const s: EpochState = { epoch: 0, model: new Map(), optimizer: new Map(), stepCount: 0, extra: null, source: file };
  const fail = (what: string): never => {
    for (const t of tensors.values()) t.dispose();
    throw new Error(`${file}: ${what} (${f.startOver})`);
  };
  const missing = ['epoch', 'stepCount', f.recordKey].filter((k) => metadata[k] === undefined);
  if (missing.length) fail(`metadata lacks ${missing.map((k) => `'${k}'`).join(', ')}`);
  s.epoch = Number(metadata.epoch);
  s.stepCount = Number(metadata.stepCount);
  if (!(Number.isInteger(s.epoch) && s.epoch >= 1 && s.epoch <= epochs)) fail(`metadata 'epoch' must be an integer in 1..${epochs}, got '${metadata.epoch}'`);
  if (!(Number.isInteger(s.stepCount) && s.stepCount >= 0)) fail(`metadata 'stepCount' must be an integer >= 0, got '${metadata.stepCount}'`);
  try { s.extra = JSON.parse(metadata[f.recordKey]); } catch (e) { fail(`metadata '${f.recordKey}' is not valid JSON (${(e as Error).message})`); }
  for (const [k, v] of tensors) {
    const m = /^(model|optim)\.(.+)$/.exec(k);
    if (!m) fail(`unexpected tensor '${k}' (expected model.* and optim.*)`);
    (m![1] === 'model' ? s.model : s.optimizer).set(m![2], v);
  }
  if (!s.model.size) fail("no 'model.*' tensors");
  return s;
}
