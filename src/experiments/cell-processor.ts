// BullMQ sandboxed processor: runs one cell in this child process of a `vardefense worker`.
import * as fs from 'fs';
import * as path from 'path';
import type { SandboxedJob } from 'bullmq';
import { experimentSchema, expandCells } from './config';
import type { CellJob, CellJobResult } from './queue';
import { reportOf, runCell } from './runner';

// An orphan (its worker was killed) stops instead of finishing a cell nobody will collect.
process.on('disconnect', () => process.exit(1));

export default async function processCell(job: SandboxedJob<CellJob, CellJobResult>): Promise<CellJobResult> {
  const e = experimentSchema.parse(job.data.experiment);
  const cell = expandCells(e).find((c) => c.id === job.data.cell);
  if (!cell) throw new Error(`experiment '${e.name}' has no cell ${job.data.cell}`);
  const out = path.join(process.env.VARDEFENSE_WORKER_OUT ?? 'runs', e.name);
  const result = runCell(e, out, cell, process.env.VARDEFENSE_DATA_DIR, (l) => { void job.log(l); });
  return { result, report: fs.readFileSync(reportOf(out, cell), 'utf8'), worker: process.env.VARDEFENSE_WORKER_NAME ?? 'unknown' };
}
