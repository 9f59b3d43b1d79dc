// `vardefense report`: the summary table of the defense reports under the given folders, and the HTML page.
import { writeHtmlReport } from '../report/html';
import { aggregateText } from '../report/aggregate';
import { comparisonText, standingsText } from '../report/compare';
import { collectRows, csvTable, markdownTable, pivotMarkdown } from '../report/summary';

export async function runSummary(dirs: string[], o: { format: 'markdown' | 'pivot' | 'by-defense' | 'csv' | 'json'; html?: string; aggregate?: boolean; standings?: boolean; compare?: string; dataDir?: string }): Promise<void> {
  const rows = collectRows(dirs);
  if (rows.length === 0) throw new Error(`no report.json under ${dirs.join(', ')}`);
  const text = { json: () => JSON.stringify(rows, null, 1), csv: () => csvTable(rows), pivot: () => pivotMarkdown(rows), markdown: () => markdownTable(rows) };
  const flat = o.format === 'pivot' || o.format === 'by-defense' ? 'markdown' : o.format;
  if (o.standings || o.compare) {
    if (o.standings) console.log(standingsText(rows, flat));
    if (o.compare) console.log(`${o.standings ? '\n' : ''}${comparisonText(rows, o.compare, flat)}`);
  } else console.log(o.aggregate || o.format === 'by-defense' ? aggregateText(rows, o.format) : text[o.format as keyof typeof text]());
  if (o.html) {
    await writeHtmlReport(rows, o.html, o);
    console.error(`HTML report: ${o.html}`);
  }
}
