// `vardefense train`: a clean or poisoned model, checkpointed every epoch, resumable.
import { metricsTable } from './report';
import { DatasetName } from '../data/datasets';
import { ModelName } from '../models';
import { AttackFlags, attackFromFlags, flagOf } from '../pipeline/attack-spec';
import { trainProgressHooks } from '../pipeline/train';
import { DEFAULT_TRAIN, Schedule, train, TrainConfig, trainConfigIssues } from '../train/run';
import { formatIssues } from '../util/validation';
import { Precision } from '../torch';

export interface TrainFlags extends AttackFlags {
  dataset: DatasetName; dataDir?: string; model: ModelName; width: number; epochs: number; batchSize: number; lr: number;
  momentum: number; weightDecay: number; schedule: Schedule; seed: number; cleanFraction: number; out: string; resume: boolean;
  json: boolean; evalEachEpoch: boolean; precision?: Precision;
}

export function configFromFlags(f: TrainFlags): TrainConfig {
  return {
    ...DEFAULT_TRAIN, dataset: f.dataset, model: f.model, width: f.model === 'small-cnn' ? undefined : f.width, attack: attackFromFlags(f),
    cleanFraction: f.cleanFraction, epochs: f.epochs, batchSize: f.batchSize, lr: f.lr, momentum: f.momentum, weightDecay: f.weightDecay,
    schedule: f.schedule, seed: f.seed, evalEachEpoch: f.evalEachEpoch,
    // recorded only when not the default, so that fp32 configs stay those of runs made before the flag
    ...(f.precision && f.precision !== 'fp32' ? { precision: f.precision } : {}),
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
