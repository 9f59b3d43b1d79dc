// `vardefense eval`: ACC, ASR, RA and per-class accuracy of a model file or a run directory, on the
// dataset's test split or (--test) the user's own images.
import { EvalFlags, evalTarget, Given } from '../pipeline/flag-requests';
import { evaluateTarget } from '../pipeline/evaluate';
import { metricsTable } from './report';

export type { EvalFlags, EvalTarget } from '../pipeline/flag-requests';
export { evalTarget } from '../pipeline/flag-requests';

export function runEval(f: EvalFlags, given?: Given): void {
  const t = evalTarget(f, given);
  const precision = f.precision ?? 'fp32';
  const attack = t.asrImages ? { kind: 'images' as const, ...t.asrImages.set } : t.attack;
  const m = evaluateTarget({ ...t, attack, test: t.images?.set, precision }, f.dataDir);
  const on = t.images?.path ?? `${t.dataset} test split`;
  if (f.json) console.log(JSON.stringify({ weights: t.weights, dataset: t.dataset, model: t.model, attack: t.attack, ...(t.images ? { images: t.images.path } : {}), ...(t.asrImages ? { asrImages: t.asrImages.path } : {}), precision, ...m }));
  else console.log(`${t.weights} on ${on}${precision === 'fp32' ? '' : ` (${precision})`}\n${metricsTable(m)}`);
}
