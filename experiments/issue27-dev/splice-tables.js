// Writes the tables of the issue 27 records into docs/results.md (between the markers), as
// test/experiments/issue27-records.test.ts checks: the development runs, the final grid once its
// records exist, and issue 28's torchvision zoo (the same goal tables). usage (after `npx tsc -p .`): node experiments/issue27-dev/splice-tables.js
const fs = require('fs');
const path = require('path');
const { aggregateText } = require('../../dist/src/report/aggregate');
const { standingsText } = require('../../dist/src/report/compare');
const { collectRows } = require('../../dist/src/report/summary');
const { goalTables } = require('../issue27-final/goals');
const root = path.join(__dirname, '..', '..');
const records = (name) => path.join(root, 'experiments', 'records', name);
const judges = (name) => path.join(root, 'experiments', 'judges', `${name}.json`);

/** Every generated section: marker name -> text. */
function sections() {
  const out = {};
  const dev = collectRows([records('issue27-dev')]);
  out['issue27-standings'] = standingsText(dev, 'markdown');
  out['issue27-aggregate'] = aggregateText(dev, 'markdown');
  const g = goalTables(records('issue27-dev'), judges('dev'), 'robust');
  out['issue27-dev-goals'] = `${g.byDefense}\n\n${g.perJudge}`;
  if (fs.existsSync(records('issue27-final'))) {
    const f = goalTables(records('issue27-final'), judges('final'), 'grid');
    out['issue27-final-goals'] = `${f.byDefense}\n\n${f.perJudge}`;
    const a = goalTables(records('issue27-final'), judges('final'), 'ablations');
    out['issue27-final-ablations'] = `${a.byDefense}\n\n${a.perJudge}`;
  }
  // issue 28's torchvision zoo (scripts/judges/zoo.py), defended by the default and FT
  if (fs.existsSync(records('issue28-zoo'))) {
    const z = goalTables(records('issue28-zoo'), judges('zoo'), 'zoo', 'ft');
    out['issue28-zoo'] = `${z.byDefense}\n\n${z.perJudge}`;
  }
  return out;
}

const put = (text, name, body) => {
  const a = `<!-- ${name}: generated -->`, b = `<!-- ${name}: end -->`;
  const i = text.indexOf(a), j = text.indexOf(b);
  if (i < 0 || j < 0) throw new Error(`docs/results.md: no markers for ${name}`);
  return text.slice(0, i + a.length) + '\n' + body.trim() + '\n' + text.slice(j);
};

module.exports = { sections };

if (require.main === module) {
  const file = path.join(root, 'docs', 'results.md');
  let out = fs.readFileSync(file, 'utf8');
  for (const [name, body] of Object.entries(sections())) out = put(out, name, body);
  fs.writeFileSync(file + '.tmp', out);
  fs.renameSync(file + '.tmp', file);
  console.log(`${Object.keys(sections()).join(', ')} written`);
}
