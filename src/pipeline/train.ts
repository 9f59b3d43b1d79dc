// Training a (clean or backdoored) model, with progress reported per epoch.
import { DEFAULT_TRAIN, train, TrainConfig, trainConfigIssues, TrainHooks, TrainResult } from '../train/run';
import { pct } from '../util/format';
import { progress, Progress } from './progress';

export { DEFAULT_TRAIN, train, trainConfigIssues };
export type { TrainConfig, TrainHooks, TrainResult };

/** Progress for a training run: a bar (or plain lines) per epoch and a summary line after it. */
export function trainProgressHooks(epochs: number, log: (l: string) => void = (l) => process.stderr.write(`${l}\n`)): TrainHooks {
  let bar: Progress | null = null;
  let seen = 0, right = 0;
  return {
    log,
    onEpochStart: (e, n) => { bar = progress(`epoch ${e}/${epochs}`, n); seen = 0; right = 0; },
    onBatch: (n, loss, correct) => { seen += n; right += correct; bar?.tick(n, { loss: loss.toFixed(3), acc: pct(right / seen) }); },
    onEpochEnd: (rec) => {
      bar?.stop();
      const t = rec.test;
      log(`epoch ${rec.epoch}: loss ${rec.loss.toFixed(4)} train acc ${pct(rec.trainAcc)} ${rec.imagesPerSecond.toFixed(0)} img/s ${rec.seconds.toFixed(0)} s` +
        (t ? ` | test ACC ${pct(t.acc)} ASR ${pct(t.asr)}` : ''));
    },
  };
}
