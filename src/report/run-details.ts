// What the HTML report reads beyond the table: a defense run's training config and its defense's own
// report (report.json in the row's folder). Synthetic or moved rows without the file give null.
import * as fs from 'fs';
import * as path from 'path';
import type { TrainConfig } from '../train/run';
import { readRunRecord } from '../train/run-records';

/** The part of a defend report.json the figures use. */
export interface DefendRecord { method: string; source?: { config?: TrainConfig }; report: unknown }

export function readDefendRecord(dir: string): DefendRecord | null {
  const file = path.join(dir, 'report.json');
  return fs.existsSync(file) ? readRunRecord<DefendRecord>(file) : null;
}
