// `vardefense defend`: flags -> a defend request (src/pipeline/flag-requests.ts: a training run of ours,
// or weights with their architecture, clean images and trigger), then the table or JSON of the outcomes.
import { defenseLabel } from '../defenses/registry';
import { flaggedBy } from '../defenses/verdict';
import { CleanDataError } from '../pipeline/clean-data';
import { defend, DefendOutcome } from '../pipeline/defend';
import { DefendFlags, defendRequest, Given } from '../pipeline/flag-requests';
import { pct } from './report';

export type { DefendFlags } from '../pipeline/flag-requests';

export function outcomeTable(rows: DefendOutcome[]): string {
  const ft = rows.find((r) => r.method === 'ft');
  const head = '| defense | ACC before | ACC after | ASR before | ASR after | RA after | clean->target after | seconds | vs FT time | backdoor left? (verdict) |';
  const lines = [head, '|---|---|---|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    const ratio = ft ? (r.report.seconds / ft.report.seconds).toFixed(2) : '-';
    lines.push(`| ${defenseLabel(r.method, r.preset)} | ${pct(r.before.acc)} | ${pct(r.after.acc)} | ${pct(r.before.asr)} | ${pct(r.after.asr)} | ${pct(r.after.ra)} | ${pct(r.after.cleanToTarget ?? null)} | ${r.report.seconds.toFixed(1)} | ${ratio} | ${verdictCell(r)} |`);
  }
  return lines.join('\n');
}

const verdictCell = (r: DefendOutcome): string => {
  const v = r.verdict;
  if (!v) return '-';
  const by = flaggedBy(v);
  if (by) return `likely, class ${by.suspect} (${by === v.after ? '' : 'square scan, '}index ${by.anomalyIndex.toFixed(1)})`;
  return `none found (index ${v.after.anomalyIndex.toFixed(1)}${v.scan ? `, square scan ${v.scan.after.anomalyIndex.toFixed(1)}` : ''})`;
};

const CLEAN_FLAGS = { size: '--clean-size', seed: '--clean-seed', indices: '--run' };

export function runDefend(f: DefendFlags, given?: Given): void {
  const request = defendRequest(f, given);
  let rows: DefendOutcome[];
  try {
    rows = defend(request, (o) => process.stderr.write(`${o.method}:${o.preset}: ACC ${pct(o.before.acc)} -> ${pct(o.after.acc)}, ASR ${pct(o.before.asr)} -> ${pct(o.after.asr)} (${o.report.seconds.toFixed(1)} s)\n`));
  } catch (e) {
    if (e instanceof CleanDataError && e.field !== 'indices') throw new Error(`${CLEAN_FLAGS[e.field]}: ${e.message.replace(/^clean (size|seed) /, '')}`);
    throw e;
  }
  if (f.json) console.log(JSON.stringify(rows.map((r) => ({ method: r.method, preset: r.preset, dir: r.dir, before: r.before, after: r.after, seconds: r.report.seconds, verdict: r.verdict ?? null }))));
  else console.log(outcomeTable(rows));
}
