// `vardefense report`: the summary table of the defense reports under the given folders, and the HTML page.
import { writeHtmlReport } from '../report/html';
import { collectRows, csvTable, markdownTable, pivotMarkdown } from '../report/summary';

export async function runSummary(dirs: string[], o: { format: 'markdown' | 'pivot' | 'csv' | 'json'; html?: string }): Promise<void> {
  const rows = collectRows(dirs);
  if (rows.length === 0) throw new Error(`no report.json under ${dirs.join(', ')}`);
  const text = { json: () => JSON.stringify(rows, null, 1), csv: () => csvTable(rows), pivot: () => pivotMarkdown(rows), markdown: () => markdownTable(rows) };
  console.log(text[o.format]());
  if (o.html) {
    await writeHtmlReport(rows, o.html);
    console.error(`HTML report: ${o.html}`);
  }
}
