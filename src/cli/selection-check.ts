// `vardefense selection-check`: the channels each VarDefense selection catches, pooled per defense column.
import { checksText, selectionChecks } from '../report/selection-check';

export function runSelectionCheck(dirs: string[], o: { top: number; format: 'markdown' | 'csv' | 'json'; json?: boolean; dataDir?: string }): void {
  const rows = selectionChecks(dirs, { top: o.top, dataDir: o.dataDir, log: (l) => process.stderr.write(`${l}\n`) });
  if (rows.length === 0) throw new Error(`no VarDefense report.json under ${dirs.join(', ')}`);
  console.log(checksText(rows, o.json ? 'json' : o.format, o.top));
}
