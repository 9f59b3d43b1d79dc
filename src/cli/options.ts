// Command-line options shared by train, eval and defend, with checked parsing.
import { Command, InvalidArgumentError, Option } from 'commander';
import { AttackSpec } from '../attacks/poison';
import { DATASET_NAMES, datasetInfo, IMAGES_SHAPE_FORM } from '../data/datasets';
import { MODEL_NAMES } from '../models';
import { z } from 'zod';
import { ATTACK_OPTIONS, AttackFlags, attackFlagIssues, attackFromFlags } from '../pipeline/attack-spec';

export { ATTACK_KINDS, attackFromFlags, attackKey, flagOf, SIG_DEFAULTS, WANET_DEFAULTS } from '../pipeline/attack-spec';
export type { AttackFlags } from '../pipeline/attack-spec';

export function int(name: string, min = 0) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`${name} must be an integer >= ${min}, got '${v}'`);
    return n;
  };
}

export function num(name: string, min = -Infinity, max = Infinity) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be a number in [${min}, ${max}], got '${v}'`);
    return n;
  };
}

/** A share strictly between 0 and 1. */
export function fraction(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!(n > 0 && n < 1)) throw new InvalidArgumentError(`${name} must be a number in (0, 1), got '${v}'`);
    return n;
  };
}

/** --precision fp32|bf16 (bf16: bfloat16 autocast where the CPU has AVX512-BF16 or AMX; refused elsewhere, docs/engine.md). */
export function addPrecisionOption(c: Command): Command {
  return c.addOption(new Option('--precision <p>', 'arithmetic: fp32, or bf16 (bfloat16 autocast as torch.autocast: convolutions and matmuls in bf16, losses, BN statistics and weights in fp32; needs AVX512-BF16 or AMX)')
    .choices(['fp32', 'bf16']).default('fp32'));
}

/** --dataset for a model the user brings: a built-in dataset's name, or the shape of the user's own images. */
function datasetSpec(v: string): string {
  if ((DATASET_NAMES as readonly string[]).includes(v)) return v;
  try {
    datasetInfo(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message.replace(/^dataset '[^']*': /, '').replace(/^unknown dataset '[^']*' \(known: (.*)\)$/, 'known: $1'));
  }
  return v;
}
const OWN_IMAGES = `, or ${IMAGES_SHAPE_FORM} for your own images (with --clean and --test; --norm-mean/--norm-std default 0 and 1)`;

/** --dataset and --data-dir; with `ownImages`, --dataset also takes the shape of the user's own images. */
export function addDataOptions(c: Command, ownImages = false): Command {
  return c
    .addOption(ownImages ? new Option('--dataset <name>', `dataset: ${DATASET_NAMES.join(', ')}${OWN_IMAGES}`).argParser(datasetSpec).default('fashion-mnist')
      : new Option('--dataset <name>', 'dataset').choices([...DATASET_NAMES]).default('fashion-mnist'))
    .option('--data-dir <dir>', 'dataset root (default: $VARDEFENSE_DATA, ./data, system copies)');
}

export function addModelOptions(c: Command): Command {
  return c
    .addOption(new Option('--model <name>', 'architecture').choices([...MODEL_NAMES]).default('resnet18'))
    .option('--width <n>', 'ResNet base width (64 = the paper\'s ResNet-18)', int('--width', 1), 64);
}

/** A weights file with its architecture and a clean-data draw, for commands that take a run or a model without one. */
export function addWeightsOptions(c: Command, verb: string): Command {
  return c
    .option('--weights <file>', `the weights to ${verb} (safetensors or torch.save state dict); with --run: other weights with the run's config and clean split`)
    .addOption(new Option('--model <name>', 'architecture of --weights (without --run)').choices([...MODEL_NAMES]))
    .option('--width <n>', 'ResNet base width of --weights (without --run; 64 = the paper\'s ResNet-18)', int('--width', 1), 64)
    .addOption(new Option('--dataset <name>', `the dataset --weights classifies (without --run): ${DATASET_NAMES.join(', ')}${OWN_IMAGES}`).argParser(datasetSpec))
    .option('--clean-size <n>', 'clean images drawn, stratified by class, from the dataset\'s training split, or with --clean from those images (only the drawn files are read; without --run)', int('--clean-size', 1))
    .option('--clean-seed <n>', 'seed of that draw and of the train/validation hold-out (without --run)', int('--clean-seed'), 1);
}

/** The normalisation a user's model was trained with (without a run); default: the dataset's usual one. */
export function addNormOptions(c: Command): Command {
  return c
    .option('--norm-mean <list>', 'the per-channel mean the weights were trained with, on pixels in [0, 1] (comma-separated; default: the dataset\'s, README)')
    .option('--norm-std <list>', 'the per-channel std the weights were trained with (comma-separated; with --norm-mean)');
}

/** The metavariable of each attack flag in the help. */
const ATTACK_META: Record<string, string> = {
  attack: 'kind', triggerSize: 'k', pattern: 'p', position: 'p', offset: 'dx,dy', alpha: 'a', sigDelta: 'd', sigFreq: 'f', wanetK: 'k', wanetS: 's',
  wanetGridRescale: 'r', wanetCrossRatio: 'r', poisonRatio: 'r', target: 'c', attackSeed: 'n',
};

/** A flag's parser from its zod number schema, saying the range as the flag's errors always have. */
function numberFlag(name: string, s: z.ZodNumber) {
  const checks = s._def.checks;
  const min = checks.find((c) => c.kind === 'min') as { value: number; inclusive: boolean } | undefined;
  const max = checks.find((c) => c.kind === 'max') as { value: number; inclusive: boolean } | undefined;
  if (checks.some((c) => c.kind === 'int')) return int(name, min?.value ?? 0);
  if (min && !min.inclusive && min.value === 0 && !max) return positive(name);
  if (min && !min.inclusive && min.value === 0 && max?.inclusive) return positive(name, max.value);
  if (min && !min.inclusive && min.value === 0 && max && !max.inclusive && max.value === 1) return fraction(name);
  return num(name, min?.value ?? -Infinity, max?.value ?? Infinity);
}

/** The attack flags: one per key of the attack options' schema (src/attacks/attack-options.ts), with its help, default and range. */
export function addAttackOptions(c: Command, defaultAttack: AttackFlags['attack'] = 'patch'): Command {
  for (const [key, schema] of Object.entries(ATTACK_OPTIONS.shape)) {
    const flag = `--${key.replace(/[A-Z]/g, (ch) => `-${ch.toLowerCase()}`)}`;
    const d = schema as z.ZodDefault<z.ZodTypeAny>;
    const inner = d._def.innerType, help = d.description ?? '', dflt = key === 'attack' ? defaultAttack : d._def.defaultValue();
    if (inner instanceof z.ZodBoolean) c.option(flag, help, dflt);
    else if (inner instanceof z.ZodEnum) c.addOption(new Option(`${flag} <${ATTACK_META[key]}>`, help).choices([...(inner.options as string[])]).default(dflt));
    else if (inner instanceof z.ZodNumber) c.option(`${flag} <${ATTACK_META[key]}>`, help, numberFlag(flag, inner), dflt);
    else c.option(`${flag} <${ATTACK_META[key]}>`, help, dflt);
  }
  return c;
}

/** The defender's own files: clean images (`cleanHelp` says what they are for) and a trigger image. */
const IMAGES = 'a folder of class subfolders of PNG/JPEG images (torchvision ImageFolder layout) or a .npz with x (uint8 N,H,W[,C]) and y';

export function addUserFileOptions(c: Command, cleanHelp: string, testHelp: string): Command {
  return c
    .option('--clean <path>', `${cleanHelp}: ${IMAGES}`)
    .option('--test <path>', `${testHelp}: ${IMAGES}`)
    .option('--trigger-image <png>', 'the trigger as an image of the dataset\'s size (PNG/JPEG; instead of --attack): ASR is measured with it')
    .option('--trigger-mask <png>', 'which pixels of --trigger-image are the trigger: those not black (default: its alpha channel, else all)')
    .option('--resize <n>', 'resize the image files of --clean/--test as torchvision\'s Resize(n): the shorter side to n, antialiased bilinear', int('--resize', 1))
    .option('--center-crop <n>', 'then keep the centred n x n square, as torchvision\'s CenterCrop(n); the result must be the dataset\'s image size', int('--center-crop', 1))
    .option('--asr-images <npz>', 'triggered images ASR is measured on, for any trigger (instead of --attack or --trigger-image): a .npz with x (uint8 N,H,W[,C]), y (each image\'s target class) and optionally y_true (its true class, for RA and the clean->target floor)');
}

function positive(name: string, max = Infinity) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0 || n > max) throw new InvalidArgumentError(`${name} must be ${max === Infinity ? 'a positive number' : `a number in (0, ${max}]`}, got '${v}'`);
    return n;
  };
}

/** attackFromFlags, checked against the dataset (the patch inside its images, the target one of its classes). */
export function checkedAttack(f: AttackFlags, dataset: string): AttackSpec | null {
  let a: AttackSpec | null;
  try {
    a = attackFromFlags(f);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
  const issues = attackFlagIssues(a, dataset);
  if (issues) throw new InvalidArgumentError(issues);
  return a;
}
