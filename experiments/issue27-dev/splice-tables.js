// Writes the tables of the issue 27 development records into docs/results.md's section (between the
// markers), as test/experiments/issue27-records.test.ts checks. usage: node experiments/issue27-dev/splice-tables.js
const fs = require('fs');
const path = require('path');
const { aggregateText } = require('../../dist/src/report/aggregate');
const { standingsText } = require('../../dist/src/report/compare');
const { collectRows } = require('../../dist/src/report/summary');
const root = path.join(__dirname, '..', '..');
const rows = collectRows([path.join(root, 'experiments', 'records', 'issue27-dev')]);
const file = path.join(root, 'docs', 'results.md');
const doc = fs.readFileSync(file, 'utf8');
const put = (text, name, body) => {
  const a = `<!-- ${name}: generated -->`, b = `<!-- ${name}: end -->`;
  const i = text.indexOf(a), j = text.indexOf(b);
  if (i < 0 || j < 0) throw new Error(`docs/results.md: no markers for ${name}`);
  return text.slice(0, i + a.length) + '\n' + body.trim() + '\n' + text.slice(j);
};
let out = put(doc, 'issue27-standings', standingsText(rows, 'markdown'));
out = put(out, 'issue27-aggregate', aggregateText(rows, 'markdown'));
fs.writeFileSync(file + '.tmp', out);
fs.renameSync(file + '.tmp', file);
console.log(`${rows.length} records`);
