// Every defense report under the given folders as one table (Markdown, CSV, JSON or the paper's pivot),
// one row per attack setting and defense, with the cost relative to FT on the same model.
import * as fs from 'fs';
import * as path from 'path';
import { describeTrigger } from '../attacks/triggers';
import { loadSafetensors } from '../torch';
import { TrainConfig } from '../train/run';
import { readRunRecord } from '../train/run-records';
import { DefendOutcome, DefendTarget } from '../pipeline/defend';
import { DEFENSE_NAMES, defenseLabel, defenseMethod, resolveOptions } from '../defenses/registry';
import { pct } from '../util/format';
import { csvCell } from '../util/csv';
import { conditionOf } from './condition';

export interface SummaryRow {
  dataset: string; model: string; attack: string; defense: string;
  /** options that differ from the preset's */
  settings: string;
  accBefore: number; accAfter: number; asrBefore: number | null; asrAfter: number | null; raAfter: number | null;
  floorAfter: number | null; seconds: number; costVsFt: number | null; dir: string;
  /** the training seed, and the training config's hash without seeds (report/aggregate.ts pools on it) */
  seed?: number; condition?: string;
  /** the residual-backdoor verdict's answer (absent when defend ran without it) */
  verdictLikely?: boolean;
}

function findReports(dir: string): string[] {
  if (!fs.existsSync(dir)) throw new Error(`${dir}: no such folder`);
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...findReports(p));
    else if (e.name === 'report.json') out.push(p);
  }
  return out.sort();
}

/** 'key=value' for every option that differs from the named preset (an ablation's label). */
export function optionDiff(method: string, preset: string, options: object): string {
  let base: Record<string, unknown>;
  try { base = resolveOptions(defenseMethod(method), preset); } catch { return ''; }
  return Object.entries(options).filter(([k, v]) => JSON.stringify(v) !== JSON.stringify(base[k])).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ');
}

type ModelOf = Pick<TrainConfig, 'dataset' | 'model' | 'width' | 'attack'>;

/** The model's dataset, architecture and attack: the run's config, the target given without a run, or the purified model's metadata. */
function configOf(o: DefendOutcome, dir: string): ModelOf {
  if (o.source?.config) return o.source.config;
  if (o.source?.target) return o.source.target as ModelOf;
  const meta = loadSafetensors(path.join(dir, 'model.safetensors')).metadata;
  return JSON.parse(meta.config) as TrainConfig;
}

/**
 * The attack column: the trigger, or for triggered images given as they are (--asr-images) where they
 * came from and their content, so that rows of different judges never pool as seeds of one condition.
 */
function attackOf(cfg: ModelOf & { asrImages?: DefendTarget['asrImages'] }): string {
  if (cfg.asrImages) return `triggered images ${cfg.asrImages.path ? `${path.basename(path.dirname(cfg.asrImages.path))}/${path.basename(cfg.asrImages.path)} ` : ''}${cfg.asrImages.sha256.slice(0, 8)}`;
  return cfg.attack ? describeTrigger(cfg.attack.trigger) : 'none';
}

export function collectRows(dirs: string[]): SummaryRow[] {
  const rows: SummaryRow[] = [];
  for (const file of dirs.flatMap(findReports)) {
    const o = readRunRecord<DefendOutcome>(file);
    const cfg = configOf(o, path.dirname(file));
    rows.push({
      dataset: cfg.dataset, model: `${cfg.model}${cfg.width ? ` w${cfg.width}` : ''}`, attack: attackOf(cfg),
      defense: defenseLabel(o.method, o.preset), settings: optionDiff(o.method, o.preset, o.report.options), accBefore: o.before.acc, accAfter: o.after.acc,
      asrBefore: o.before.asr, asrAfter: o.after.asr, raAfter: o.after.ra, floorAfter: o.after.cleanToTarget ?? null,
      seconds: o.report.seconds, costVsFt: null, dir: path.dirname(file),
      // a model given without a run has no training config: its seed and condition stay unknown
      seed: 'seed' in cfg ? (cfg as TrainConfig).seed : undefined, condition: 'seed' in cfg ? conditionOf(cfg as TrainConfig) : undefined,
      ...(o.verdict ? { verdictLikely: o.verdict.backdoorLikely } : {}),
    });
  }
  for (const r of rows) {
    const ft = rows.find((x) => x.defense === 'ft' && x.settings === '' && x.dataset === r.dataset && x.model === r.model && x.attack === r.attack &&
      x.seed === r.seed && x.condition === r.condition); // the same model
    r.costVsFt = ft ? r.seconds / ft.seconds : null;
  }
  return sortRows(rows);
}

/** Dataset, model, attack, then the registry's defense order (VarDefense first), then settings. */
export function sortRows(rows: SummaryRow[]): SummaryRow[] {
  const rank = (r: SummaryRow): number => { const i = DEFENSE_NAMES.indexOf(r.defense.split(':')[0]); return i < 0 ? DEFENSE_NAMES.length : i; };
  const cmp = (a: string, b: string): number => a.localeCompare(b, 'en', { numeric: true });
  return [...rows].sort((a, b) => cmp(a.dataset, b.dataset) || cmp(a.model, b.model) || cmp(a.attack, b.attack) || rank(a) - rank(b) ||
    cmp(a.defense, b.defense) || cmp(a.settings, b.settings));
}

export function markdownTable(rows: SummaryRow[]): string {
  const lines = ['| dataset | model | attack | defense | settings | ACC before | ACC after | ASR before | ASR after | clean->target after | time (s) | time / FT |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|'];
  for (const r of rows)
    lines.push(`| ${r.dataset} | ${r.model} | ${r.attack} | ${r.defense} | ${r.settings.replace(/\|/g, '\\|')} | ${pct(r.accBefore)} | ${pct(r.accAfter)} | ${pct(r.asrBefore)} | ${pct(r.asrAfter)} | ${pct(r.floorAfter)} | ${r.seconds.toFixed(0)} | ${r.costVsFt === null ? '-' : r.costVsFt.toFixed(2)} |`);
  return lines.join('\n');
}

/** A defense and the options that differ from its preset, as the tables name their columns: 'nad (lr=0.02)'. */
export const columnOf = (r: { defense: string; settings: string }): string => (r.settings ? `${r.defense} (${r.settings})` : r.defense);

/** ASR after - clean->target after: the backdoor's share above what the clean model already calls target (null without both). */
export const excessOf = (r: { asrAfter: number | null; floorAfter: number | null }): number | null =>
  (r.asrAfter === null || r.floorAfter === null ? null : r.asrAfter - r.floorAfter);

/**
 * The paper's layout: one line per dataset, model and attack (with the undefended ACC / ASR), one column
 * per defense (and option setting) holding ACC / ASR after.
 */
export function pivotTable(rows: SummaryRow[]): { head: string[]; lines: string[][] } {
  const columns = [...new Set(rows.map(columnOf))];
  const lineKey = (r: SummaryRow): string => [r.dataset, r.model, r.attack].join('\n');
  const lines = [...new Set(rows.map(lineKey))].map((k) => {
    const mine = rows.filter((r) => lineKey(r) === k);
    const cells = columns.map((c) => {
      const r = mine.find((x) => columnOf(x) === c);
      return r ? `${pct(r.accAfter)} / ${pct(r.asrAfter)}` : '';
    });
    return [...k.split('\n'), `${pct(mine[0].accBefore)} / ${pct(mine[0].asrBefore)}`, ...cells];
  });
  return { head: ['dataset', 'model', 'attack', 'no defense', ...columns], lines };
}

export function pivotMarkdown(rows: SummaryRow[]): string {
  const { head, lines } = pivotTable(rows);
  const row = (cells: string[]): string => `| ${cells.map((c) => c.replace(/\|/g, '\\|')).join(' | ')} |`;
  return [row(head), `|${head.map(() => '---').join('|')}|`, ...lines.map(row)].join('\n');
}

export function csvTable(rows: SummaryRow[]): string {
  const keys = Object.keys(rows[0] ?? {}) as (keyof SummaryRow)[];
  return [keys.join(','), ...rows.map((r) => keys.map((k) => csvCell(r[k])).join(','))].join('\n');
}
