import { test } from 'node:test';
import * as assert from 'assert/strict';
import { Command } from 'commander';
import { addAttackOptions, AttackFlags, attackFromFlags } from '../../src/cli/options';
import { expandCells, parseExperiment } from '../../src/experiments/config';
import { DEFAULT_TRAIN, trainConfigIssues } from '../../src/train/run';

function parse(args: string[]): AttackFlags {
  const c = addAttackOptions(new Command().exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined }));
  c.parse(args, { from: 'user' });
  return c.opts() as AttackFlags;
}

test('--attack sig and wanet build their triggers with BackdoorBench defaults and the flags', () => {
  assert.deepEqual(attackFromFlags(parse(['--attack', 'sig']))?.trigger, { kind: 'sig', delta: 40, freq: 6 });
  assert.deepEqual(attackFromFlags(parse(['--attack', 'wanet', '--attack-seed', '7']))?.trigger,
    { kind: 'wanet', k: 4, s: 0.5, gridRescale: 1, crossRatio: 2, seed: 7 });
  const w = attackFromFlags(parse(['--attack', 'wanet', '--wanet-k', '8', '--wanet-s', '1.5', '--wanet-grid-rescale', '0.9', '--wanet-cross-ratio', '0']));
  assert.deepEqual(w?.trigger, { kind: 'wanet', k: 8, s: 1.5, gridRescale: 0.9, crossRatio: 0, seed: 1 });
  assert.deepEqual(attackFromFlags(parse(['--attack', 'sig', '--sig-delta', '20', '--sig-freq', '3']))?.trigger, { kind: 'sig', delta: 20, freq: 3 });
});

test('a training config (config.json) with a sig or wanet attack passes the run checks', () => {
  for (const args of [['--attack', 'sig'], ['--attack', 'wanet']]) {
    const cfg = { ...DEFAULT_TRAIN, dataset: 'mnist', model: 'small-cnn', attack: attackFromFlags(parse(args)) };
    assert.deepEqual(trainConfigIssues(cfg), [], args.join(' '));
    assert.deepEqual(trainConfigIssues({ ...cfg, attack: { ...cfg.attack, target: 10 } }).map((i) => i.path), ['attack.target']);
  }
});

test('bad SIG and WaNet flags are refused with the flag named', () => {
  const bad: [string[], RegExp][] = [
    [['--sig-delta', '0'], /--sig-delta must be a number in \(0, 255\], got '0'/],
    [['--sig-delta', '300'], /--sig-delta must be a number in \(0, 255\], got '300'/],
    [['--sig-freq', 'x'], /--sig-freq must be a positive number, got 'x'/],
    [['--wanet-k', '1'], /--wanet-k must be an integer >= 2, got '1'/],
    [['--wanet-k', '2.5'], /--wanet-k must be an integer >= 2/],
    [['--wanet-s', '-0.5'], /--wanet-s must be a positive number, got '-0.5'/],
    [['--wanet-grid-rescale', '1.2'], /--wanet-grid-rescale must be a number in \(0, 1\], got '1.2'/],
    [['--wanet-cross-ratio', '-1'], /--wanet-cross-ratio must be a number in \[0, Infinity\], got '-1'/],
    [['--attack', 'refool'], /argument 'refool' is invalid\. Allowed choices are patch, blend, sig, wanet, none/],
  ];
  for (const [args, re] of bad) assert.throws(() => parse(args), re, args.join(' '));
  assert.throws(() => attackFromFlags(parse(['--attack', 'sig', '--all-to-all'])), /--attack sig is clean-label .* cannot be combined with --all-to-all/);
});

const config = (attack: string): string => `
name: t
datasets: [mnist]
model: { name: resnet18, width: 4 }
attacks:
  - ${attack}
defenses: [ft]
`;

test('experiment configs take sig and wanet attacks, and name the field of a bad parameter', () => {
  const cells = expandCells(parseExperiment(config('{ name: w, attack: wanet, wanetK: 6, attackSeed: 3 }'), 'x.yaml'));
  assert.deepEqual(cells[0].train.attack?.trigger, { kind: 'wanet', k: 6, s: 0.5, gridRescale: 1, crossRatio: 2, seed: 3 });
  const sig = expandCells(parseExperiment(config('{ name: s, attack: sig, sigDelta: 20 }'), 'x.yaml'));
  assert.deepEqual(sig[0].train.attack?.trigger, { kind: 'sig', delta: 20, freq: 6 });
  assert.notEqual(sig[0].modelKey, cells[0].modelKey);
  const bad: [string, RegExp][] = [
    // the ranges and their wording are the trigger kinds' own schemas' (wanet.ts, sig.ts), value included
    ['{ name: w, attack: wanet, wanetK: 1 }', /x\.yaml: 'attacks\.0\.wanetK': must be an integer >= 2, got 1/],
    ['{ name: w, attack: wanet, wanetGridRescale: 2 }', /'attacks\.0\.wanetGridRescale': must be in \(0, 1\], got 2/],
    ['{ name: w, attack: wanet, wanetS: 0 }', /'attacks\.0\.wanetS': must be a positive number, got 0/],
    ['{ name: w, attack: wanet, wanetCrossRatio: -1 }', /'attacks\.0\.wanetCrossRatio': must be a number >= 0, got -1/],
    ['{ name: s, attack: sig, sigDelta: 300 }', /'attacks\.0\.sigDelta': must be in \(0, 255\], got 300/],
    ['{ name: s, attack: sig, sigFreq: 0 }', /'attacks\.0\.sigFreq': must be a positive number, got 0/],
    ['{ name: b, attack: blend, alpha: 0 }', /'attacks\.0\.alpha': must be in \(0, 1\], got 0/],
    ['{ name: p, poisonRatio: 1 }', /'attacks\.0\.poisonRatio': must be in \(0, 1\), got 1/],
    ['{ name: s, attack: sig, allToAll: true }', /'attacks\.0\.allToAll': attack sig is clean-label/],
    ['{ name: s, attack: sigg }', /'attacks\.0\.attack' must be one of 'patch', 'blend', 'sig', 'wanet', 'none', got 'sigg'/],
  ];
  for (const [a, re] of bad) assert.throws(() => parseExperiment(config(a), 'x.yaml'), re, a);
});
