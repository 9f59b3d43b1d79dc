#!/usr/bin/env node
// vardefense command line.
import { Command, Option } from 'commander';
import { buildInfo, getNumThreads, PRECISIONS } from '../torch';
import { DEMO_CONFIG, runDemo } from './demo';
import { runEngineDemo } from './engine-demo';
import { errorText } from './errors';
import { runEval } from './eval';
import { runDefend } from './defend';
import { runDetect } from './detect';
import { runExperimentCommand, runWorkerCommand } from './experiment';
import { runSummary } from './summary';
import { runSelectionCheck } from './selection-check';
import { MODEL_NAMES } from '../models';
import { DEFENSE_NAMES } from '../defenses/registry';
import { addAttackOptions, addDataOptions, addModelOptions, addNormOptions, addPrecisionOption, addUserFileOptions, addWeightsOptions, fraction, int, num } from './options';
import { runPreview } from './preview';
import { runTrain } from './train';
import { DATASET_NAMES, DatasetName } from '../data/datasets';
import { downloadDataset } from '../data/download';

const program = new Command();
program.name('vardefense').description('Find and remove backdoors in image classifiers (VarDefense and baselines, on libtorch)');

const trainCmd = program.command('train').description('train a clean or backdoored model (checkpoint per epoch; --resume continues)');
addDataOptions(trainCmd);
addModelOptions(trainCmd);
addAttackOptions(trainCmd);
addPrecisionOption(trainCmd);
trainCmd
  .option('--epochs <n>', 'epochs', int('--epochs', 1), 10)
  .option('--batch-size <n>', 'batch size', int('--batch-size', 1), 128)
  .option('--lr <x>', 'learning rate', num('--lr', 0), 0.01)
  .option('--momentum <x>', 'SGD momentum', num('--momentum', 0, 1), 0.9)
  .option('--weight-decay <x>', 'weight decay', num('--weight-decay', 0), 5e-4)
  .addOption(new Option('--schedule <s>', 'learning-rate schedule').choices(['cosine', 'step', 'multistep', 'constant']).default('cosine'))
  .option('--clean-fraction <f>', "share of the training set held out as the defender's clean split", fraction('--clean-fraction'), 0.05)
  .option('--seed <n>', 'seed of the split, initialisation and data order', int('--seed'), 1)
  .option('--no-eval-each-epoch', 'evaluate on the test set only at the end')
  .requiredOption('--out <dir>', 'run directory (checkpoint, model, metrics)')
  .option('--resume', 'continue the run in --out after its last complete epoch', false)
  .option('--json', 'print the result as JSON', false)
  .action((o) => runTrain(o));

const evalCmd = program.command('eval').description('ACC, ASR, RA and per-class accuracy of a model');
evalCmd.option('--run <dir>', 'a training run directory (dataset, model and attack from its config)')
  .option('--weights <file>', 'model weights: safetensors or a torch.save state dict');
addDataOptions(evalCmd, true);
addModelOptions(evalCmd);
addAttackOptions(evalCmd);
addNormOptions(evalCmd);
addPrecisionOption(evalCmd);
addUserFileOptions(evalCmd, 'the same as --test (its earlier name)', 'evaluate on these labelled images instead of the test split');
evalCmd.option('--json', 'print JSON', false).action((o, cmd: Command) => runEval(o, (key) => cmd.getOptionValueSource(key) === 'cli'));

const previewCmd = program.command('preview').description('write a PNG grid of clean test images (top) and their triggered versions (bottom)');
addDataOptions(previewCmd);
addAttackOptions(previewCmd);
previewCmd.option('--count <n>', 'images per row', int('--count', 1), 8)
  .option('--out <file>', 'PNG file', 'preview.png')
  .action((o) => runPreview(o));

program.command('download')
  .description('fetch a dataset from its official location (digest-verified, resumable) into --data-dir/<name>')
  .argument('<dataset>', `one of ${DATASET_NAMES.join(', ')}`)
  .option('--data-dir <dir>', 'dataset root', 'data')
  .option('--base-url <url>', 'a mirror serving the same file names')
  .action(async (name: string, o: { dataDir: string; baseUrl?: string }) => {
    if (!DATASET_NAMES.includes(name as DatasetName)) throw new Error(`unknown dataset '${name}' (known: ${DATASET_NAMES.join(', ')})`);
    let last = 0;
    const files = await downloadDataset(name as DatasetName, o.dataDir, {
      baseUrl: o.baseUrl,
      onProgress: (file, r, t) => {
        if (Date.now() - last < 1000 && r !== t) return;
        last = Date.now();
        process.stderr.write(`${file}: ${(r / 2 ** 20).toFixed(1)}${t ? ` / ${(t / 2 ** 20).toFixed(1)}` : ''} MiB\n`);
      },
    });
    for (const f of files) console.log(`verified ${f}`);
  });

const defendCmd = program.command('defend')
  .description('purify a backdoored model with one or more defenses (each on a fresh copy; clean data only): a training run of ours, or --weights with --model, --dataset and --clean-size or --clean')
  .option('--run <dir>', 'the training run of the backdoored model (its clean split is the defender\'s data)');
addWeightsOptions(defendCmd, 'purify');
addNormOptions(defendCmd);
addUserFileOptions(defendCmd, 'your own clean images instead of --clean-size (without --run)',
  'measure ACC / ASR before and after on these labelled images instead of the dataset\'s test split (without --run)');
addAttackOptions(defendCmd, 'none');
addPrecisionOption(defendCmd);
defendCmd
  .option('--method <list>', `defenses as name[:preset], comma-separated (${DEFENSE_NAMES.join(', ')})`, 'vardefense')
  .option('--set <key=value>', 'override an option of the method(s); repeatable (JSON values, e.g. lambda=auto, statsMomentum=null)', (v: string, acc: string[]) => [...acc, v], [] as string[])
  .option('--lambda <x>', "VarDefense's penalty weight, or 'auto' (same as --set lambda=...)")
  .option('--val-fraction <f>', 'share of the clean data held out for validation', fraction('--val-fraction'), 0.1)
  .option('--seed <n>', 'seed of the defense (overrides the preset\'s)', int('--seed'))
  .option('--out <dir>', 'output root (default with --run: <run>/defenses)')
  .option('--data-dir <dir>', 'dataset root')
  .option('--force', 'rerun methods that have a report already, and start over rather than resume from checkpoints', false)
  .option('--no-verdict', 'skip the residual-backdoor verdict on each purified model (a trigger search over the classes and a scan of solid squares, from the clean images alone)')
  .option('--no-verdict-scan', 'the verdict without its square scan (the trigger search alone)')
  .option('--json', 'print JSON', false);
defendCmd.action((o, cmd: Command) => runDefend(o, (key) => cmd.getOptionValueSource(key) === 'cli'));

const detectCmd = program.command('detect')
  .description('Neural Cleanse: reverse-engineer a minimal trigger per class on clean data and flag outlying classes (writes detect.json): a training run of ours, or --weights with --model, --dataset and --clean-size or --clean')
  .option('--run <dir>', 'the training run of the model (its clean split is the defender\'s data)');
addWeightsOptions(detectCmd, 'examine');
detectCmd
  .option('--clean <path>', 'your own clean images instead of --clean-size (without --run): an ImageFolder folder or a .npz, as for defend')
  .option('--preset <name>', "'default' (published: up to 1000 epochs per class) or 'cpu-short' (NOT published: 50)", 'default')
  .option('--set <key=value>', 'override an option (JSON values, e.g. epochs=20); repeatable', (v: string, acc: string[]) => [...acc, v], [] as string[])
  .option('--seed <n>', 'seed of the reverse engineering', int('--seed'))
  .option('--out <file>', 'the JSON written (default with --run: <run>/detect.json)')
  .option('--data-dir <dir>', 'dataset root')
  .option('--json', 'print JSON', false);
addNormOptions(detectCmd);
addPrecisionOption(detectCmd);
detectCmd.action((o, cmd: Command) => runDetect(o, (key) => cmd.getOptionValueSource(key) === 'cli'));

program.command('report')
  .description('collect the defense reports under the given folders into one table')
  .argument('<dirs...>', 'folders searched for report.json (e.g. <run>/defenses)')
  .addOption(new Option('--format <f>', "output format ('pivot': ACC / ASR after, one line per attack, one column per defense, as the paper's tables; 'by-defense': the same pooled over seeds, one line per defense)")
    .choices(['markdown', 'pivot', 'by-defense', 'csv', 'json']).default('markdown'))
  .option('--html <file>', 'also write a self-contained HTML page with the table and figures')
  .option('--data-dir <dir>', "dataset root (the HTML report's trigger previews read test images)")
  .option('--aggregate', 'pool runs that differ only in seed: n, mean ± sample std of each metric, excess ASR (ASR - clean->target)', false)
  .option('--standings', 'one line per defense over all its models: ACC drop, ASR, excess ASR, ACC - ASR (mean ± std), settings at the goal', false)
  .option('--compare <defense>', "that defense (a column name, e.g. 'vardefense:bn-distill') against every other, paired by model: differences, wins, sign test")
  .action((dirs: string[], o) => runSummary(dirs, o));

program.command('selection-check')
  .description("which channels each VarDefense selection catches: per model, the channels its trigger moves most (original model, eval mode, the run's clean split) against each report's selected set; recall, chance, excess ASR per defense")
  .argument('<dirs...>', 'folders searched for VarDefense report.json (e.g. an experiment\'s cells/); each report\'s model is its training run, or its weights with the attack flags and --clean-size draw it was defended with')
  .option('--top <f>', 'the share of all measured channels (network-wide) counted as the trigger\'s, by |shift|', fraction('--top'), 0.05)
  .addOption(new Option('--format <f>', 'output format').choices(['markdown', 'csv', 'json']).default('markdown'))
  .option('--json', 'the same as --format json (with the per-model rows)', false)
  .option('--data-dir <dir>', 'dataset root')
  .action((dirs: string[], o) => runSelectionCheck(dirs, o));

program.command('experiment')
  .description('run a grid (datasets x attacks x seeds x defenses x sweeps) from a YAML or JSON config; rerun to continue')
  .argument('<config>', 'experiment config (see experiments/*.yaml)')
  .option('--out <dir>', 'output folder (default: runs/<name>)')
  .option('--data-dir <dir>', 'dataset root')
  .option('--models <dir>', 'backdoored-model cache shared between experiments (default: <out>/models)')
  .option('--datasets <list>', "run only the grid's part on these datasets (comma-separated)")
  .option('--attacks <list>', "run only the grid's part with these attack names (comma-separated; processes can split a grid)")
  .option('--defenses <list>', "run only the grid's entries with these defense labels, e.g. ft,vardefense:bn-distill (comma-separated; cheap ones first)")
  .option('--json', 'print every cell result as JSON', false)
  .addOption(new Option('--precision <p>', "arithmetic of the cells' training and defenses: fp32 or bf16 (default: the config's, fp32 if it has none; bf16 cells are other cells)").choices([...PRECISIONS]))
  .option('--queue <url>', 'run the cells on BullMQ workers through this Redis (redis://host:port) and gather their results here')
  .action((config: string, o) => runExperimentCommand(config, o));

program.command('worker')
  .description('run experiment cells from a Redis queue (see experiment --queue); several per machine or across machines')
  .requiredOption('--queue <url>', 'Redis URL, e.g. redis://host:6379')
  .option('--out <dir>', 'where this worker keeps models and cells: <out>/<experiment name>/', 'runs')
  .option('--data-dir <dir>', 'dataset root')
  .option('--concurrency <n>', 'cells at a time (each in its own process)', int('--concurrency', 1), 1)
  .option('--lock-duration <ms>', 'a killed worker\'s cell is retried elsewhere after about this long', int('--lock-duration', 1000), 30000)
  .action((o) => runWorkerCommand(o));

program.command('demo')
  .description('the main job: backdoor Fashion-MNIST (3x3 patch, 5%), train ResNet-18, purify with VarDefense and the baselines, print the table, write the HTML report')
  .option('--config <file>', 'the grid to run', DEMO_CONFIG)
  .option('--out <dir>', 'output folder (default: runs/<name>)')
  .option('--data-dir <dir>', 'dataset root')
  .action((o) => runDemo(o));

program.command('engine-demo')
  .description('train a small CNN on the real Fashion-MNIST and print test accuracy and img/s')
  .option('--data-dir <dir>', 'dataset root')
  .option('--epochs <n>', 'epochs', int('--epochs', 1), 1)
  .option('--batch-size <n>', 'batch size', int('--batch-size', 1), 128)
  .option('--seed <n>', 'random seed', int('--seed'), 1)
  .option('--json', 'print JSON instead of a table', false)
  .action((o) => runEngineDemo(o));

program.command('info')
  .description('print the libtorch build and thread settings')
  .action(() => {
    const b = buildInfo();
    console.log(`libtorch ${b.torch}, threads ${getNumThreads()}, CUDA ${b.cuda ? 'yes' : 'no'}, oneDNN ${b.mkldnn ? 'yes' : 'no'}`);
  });

// any failure: one line and exit 1 (VARDEFENSE_DEBUG=1: the stack too)
function fail(e: unknown): never {
  console.error(errorText(e, !!process.env.VARDEFENSE_DEBUG));
  process.exit(1);
}

process.on('uncaughtException', fail);
program.parseAsync(process.argv).catch(fail);
