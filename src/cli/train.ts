// `vardefense train`: a clean or poisoned model, checkpointed every epoch, resumable.
import { AttackFlags, attackFromFlags, flagOf } from './options';
import { progress, Progress } from './progress';
import { metricsTable, pct } from './report';
import { DatasetName } from '../data/datasets';
import { ModelName } from '../models';
import { DEFAULT_TRAIN, Schedule, train, TrainConfig, trainConfigIssues, TrainHooks } from '../train/run';
import { formatIssues } from '../util/validation';

export interface TrainFlags extends AttackFlags {
  dataset: DatasetName; dataDir?: string; model: ModelName; width: number; epochs: number; batchSize: number; lr: number;
  momentum: number; weightDecay: number; schedule: Schedule; seed: number; cleanFraction: number; out: string; resume: boolean;
  json: boolean; evalEachEpoch: boolean;
}

export function configFromFlags(f: TrainFlags): TrainConfig {
  return {
    ...DEFAULT_TRAIN, dataset: f.dataset, model: f.model, width: f.model === 'small-cnn' ? undefined : f.width, attack: attackFromFlags(f),
    cleanFraction: f.cleanFraction, epochs: f.epochs, batchSize: f.batchSize, lr: f.lr, momentum: f.momentum, weightDecay: f.weightDecay,
    schedule: f.schedule, seed: f.seed, evalEachEpoch: f.evalEachEpoch,
  };
}

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

export function runTrain(f: TrainFlags): void {
  const cfg = configFromFlags(f);
  const issues = trainConfigIssues(cfg);
  if (issues.length) throw new Error(formatIssues(issues, flagOf));
  const r = train(cfg, f.out, { resume: f.resume, dataDir: f.dataDir, hooks: trainProgressHooks(cfg.epochs) });
  if (f.json) console.log(JSON.stringify({ out: f.out, config: cfg, metrics: r.metrics, history: r.history }));
  else console.log(`model: ${f.out}/model.safetensors\n${metricsTable(r.metrics)}`);
  r.model.dispose();
}
