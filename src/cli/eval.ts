// `vardefense eval`: ACC, ASR, RA and per-class accuracy of a model file or a run directory.
import * as path from 'path';
import { AttackFlags } from '../pipeline/attack-spec';
import { checkedAttack } from './options';
import { metricsTable } from './report';
import { AttackSpec } from '../attacks/poison';
import { DatasetName } from '../data/datasets';
import { ModelName } from '../models';
import { evaluateTarget } from '../pipeline/evaluate';
import { ModelSource } from '../pipeline/model';
import { runTarget } from '../pipeline/run-dir';
import { assertFile } from '../util/paths';

export interface EvalFlags extends AttackFlags {
  run?: string; weights?: string; dataset: DatasetName; dataDir?: string; model: ModelName; width: number; json: boolean;
}

export type EvalTarget = ModelSource & { attack: AttackSpec | null };

export function evalTarget(f: EvalFlags): EvalTarget {
  if (f.run) return runTarget(f.run, f.weights);
  if (!f.weights) throw new Error('give --run <dir> or --weights <file> (safetensors or torch.save state dict)');
  assertFile(f.weights, '--weights');
  return { dataset: f.dataset, model: f.model, width: f.width, attack: checkedAttack(f, f.dataset), weights: path.resolve(f.weights) };
}

export function runEval(f: EvalFlags): void {
  const t = evalTarget(f);
  const m = evaluateTarget(t, f.dataDir);
  if (f.json) console.log(JSON.stringify({ weights: t.weights, dataset: t.dataset, model: t.model, attack: t.attack, ...m }));
  else console.log(`${t.weights} on ${t.dataset}\n${metricsTable(m)}`);
}
