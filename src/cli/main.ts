#!/usr/bin/env node
// vardefense command line.
import { Command, InvalidArgumentError } from 'commander';
import { buildInfo, getNumThreads } from '../torch';
import { runDemo } from './demo';

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer, got '${v}'`);
    return n;
  };
}

const program = new Command();
program.name('vardefense').description('Find and remove backdoors in image classifiers (VarDefense and baselines, on libtorch)');

program.command('demo')
  .description('train a small CNN on the real Fashion-MNIST and print test accuracy and img/s')
  .option('--data-dir <dir>', 'dataset root (default: $VARDEFENSE_DATA, ./data, /usr/share/datasets)')
  .option('--epochs <n>', 'epochs', positiveInt('--epochs'), 1)
  .option('--batch-size <n>', 'batch size', positiveInt('--batch-size'), 128)
  .option('--seed <n>', 'random seed', positiveInt('--seed'), 1)
  .option('--json', 'print JSON instead of a table', false)
  .action((o) => runDemo(o));

program.command('info')
  .description('print the libtorch build and thread settings')
  .action(() => {
    const b = buildInfo();
    console.log(`libtorch ${b.torch}, threads ${getNumThreads()}, CUDA ${b.cuda ? 'yes' : 'no'}, oneDNN ${b.mkldnn ? 'yes' : 'no'}`);
  });

program.parseAsync(process.argv).catch((e: Error) => {
  console.error(`error: ${e.message}`);
  process.exit(1);
});
