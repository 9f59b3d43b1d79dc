// Trigger previews for the HTML report: a few test images, clean (top) and with each attack's trigger
// (bottom), as PNG data URIs. The report reads the test set the way `vardefense preview` does, and
// never inside a defense: withoutTestSet() refuses it (checked first, so the refusal names the report).
import { gridPng } from '../attacks/preview';
import { applyTrigger } from '../attacks/triggers';
import { tensor } from '../torch';
import { DatasetName, loadImageSet } from '../data/datasets';
import { assertTestSetAllowed } from '../data/test-set-lock';
import type { ImageSet } from '../data/image-set';
import type { SummaryRow } from './summary';
import type { TrainConfig } from '../train/run';
import { Rng } from '../util/rng';
import { readDefendRecord } from './run-details';

export interface TriggerPreview { dataset: string; attack: string; /** PNG data URI, or null with a note */ png: string | null; note?: string }

/** The first `count` test images outside the target class (a triggered target image shows no flip). */
function sample(test: ImageSet, target: number, count: number): number[] {
  const labels = test.labels.toList();
  const out: number[] = [];
  for (let i = 0; i < labels.length && out.length < count; i++) if (labels[i] !== target) out.push(i);
  return out;
}

function previewOf(cfg: TrainConfig, test: ImageSet, count: number): string {
  const attack = cfg.attack!;
  const idx = sample(test, attack.mode === 'all-to-one' ? attack.target : -1, count);
  const index = tensor(Float64Array.from(idx), [idx.length]).long();
  const clean = test.images.indexSelect(0, index);
  index.dispose();
  const triggered = applyTrigger(clean, attack.trigger, new Rng(attack.seed));
  try {
    return `data:image/png;base64,${gridPng([clean, triggered], test.images.size(2) <= 32 ? 3 : 1).toString('base64')}`;
  } finally { clean.dispose(); triggered.dispose(); }
}

/** One preview per dataset and attack among the rows (from the first run of each with a readable config). */
export function triggerPreviews(rows: SummaryRow[], o: { dataDir?: string; count?: number } = {}): TriggerPreview[] {
  assertTestSetAllowed('the HTML report\'s trigger previews');
  const seen = new Set<string>();
  const tests = new Map<string, ImageSet | Error>();
  const out: TriggerPreview[] = [];
  for (const r of rows) {
    const key = `${r.dataset}\n${r.attack}`;
    if (r.attack === 'none' || seen.has(key)) continue;
    const cfg = readDefendRecord(r.dir)?.source?.config;
    if (!cfg?.attack) continue;
    seen.add(key);
    if (!tests.has(cfg.dataset)) {
      try { tests.set(cfg.dataset, loadImageSet(cfg.dataset as DatasetName, 'test', o.dataDir)); } catch (e) { tests.set(cfg.dataset, e as Error); }
    }
    const test = tests.get(cfg.dataset)!;
    if (test instanceof Error) out.push({ dataset: r.dataset, attack: r.attack, png: null, note: `no preview: ${test.message}` });
    else out.push({ dataset: r.dataset, attack: r.attack, png: previewOf(cfg, test, o.count ?? 6) });
  }
  for (const t of tests.values()) if (!(t instanceof Error)) { t.images.dispose(); t.labels.dispose(); }
  return out;
}
