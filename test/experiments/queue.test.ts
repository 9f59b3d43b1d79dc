import { test } from 'node:test';
import * as assert from 'assert/strict';
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import { writeSyntheticIdx } from '../../src/data/synthetic';
import { readResults } from '../../src/experiments/runner';
import { repoRoot, tmpDir } from '../helpers';

const GRID = `
name: queued
datasets: [mnist]
model: { name: resnet18, width: 4 }
train: { epochs: 1, batchSize: 64 }
verdict: false
attacks:
  - { name: patch3, attack: patch, triggerSize: 3 }
defenses:
  - ft
  - clp
  - { method: vardefense, preset: paper, set: { epochs: 1 }, sweep: { lambda: [0, 1] } }
`;

const cli = path.join(repoRoot, 'dist', 'src', 'cli', 'main.js');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Spawns a process in its own group, collecting its stderr. */
function start(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; err: () => string; exit: Promise<number | null> } {
  let err = '';
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  child.stdout!.on('data', () => undefined);
  return { child, err: () => err, exit: new Promise((r) => child.on('exit', (c) => r(c))) };
}

test('BullMQ on a local redis-server: two workers run the grid, a worker killed mid-cell has its cell retried by the other', { timeout: 240_000 }, async () => {
  const root = tmpDir('queue');
  const data = path.join(root, 'data');
  writeSyntheticIdx(path.join(data, 'mnist'), { train: 1200, test: 100 });
  const config = path.join(root, 'grid.yaml');
  fs.writeFileSync(config, GRID);
  const port = await freePort();
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', root],
    { stdio: 'ignore' });
  const procs: ChildProcess[] = [redis];
  try {
    const url = `redis://127.0.0.1:${port}`;
    for (let i = 0; ; i++) { // redis accepts connections
      const ok = await new Promise<boolean>((r) => { const s = net.connect(port, '127.0.0.1', () => { s.end(); r(true); }); s.on('error', () => r(false)); });
      if (ok) break;
      if (i > 100) throw new Error('redis-server did not start');
      await sleep(50);
    }
    const out = path.join(root, 'gathered');
    const coordinator = start([cli, 'experiment', config, '--out', out, '--queue', url]);
    procs.push(coordinator.child);
    const workerArgs = (name: string): string[] => [cli, 'worker', '--queue', url, '--out', path.join(root, name), '--data-dir', data, '--lock-duration', '1500'];
    const a = start(workerArgs('worker-a'), { VARDEFENSE_THREADS: '1' });
    procs.push(a.child);
    await until('worker a to start a cell', () => /cell \w+ of queued started/.test(a.err()), 60_000);
    const killed = /cell (\w+) of queued started/.exec(a.err())![1];
    const b = start(workerArgs('worker-b'), { VARDEFENSE_THREADS: '1' });
    procs.push(b.child);
    await sleep(300);
    process.kill(-a.child.pid!, 'SIGKILL'); // the worker and its cell's child process
    assert.equal(await coordinator.exit.then((c) => c), 0, `coordinator failed:\n${coordinator.err()}\nworker b:\n${b.err()}`);

    const results = readResults(out);
    assert.equal(results.length, 4, 'every cell gathered in the coordinator\'s results.jsonl');
    assert.equal(new Set(results.map((r) => r.cell)).size, 4);
    assert.ok(results.some((r) => r.cell === killed), 'the killed cell is among the results');
    assert.match(b.err(), new RegExp(`cell ${killed} of queued started \\(attempt 1, after 1 stalled run`), 'worker b picked up the killed cell');
    assert.ok(fs.existsSync(path.join(root, 'worker-b', 'queued', 'cells', killed)), 'the killed cell ran on worker b');
    const aCell = path.join(root, 'worker-a', 'queued', 'cells', killed);
    const aReports = fs.existsSync(aCell) ? fs.readdirSync(aCell, { recursive: true }).filter((f) => String(f).endsWith('report.json')) : [];
    assert.deepEqual(aReports, [], 'worker a never finished it');
    for (const r of results) {
      const report = JSON.parse(fs.readFileSync(path.join(out, 'cells', r.cell, r.method === 'vardefense' ? 'vardefense-paper' : r.method, 'report.json'), 'utf8')) as { after: { acc: number } };
      assert.equal(report.after.acc, r.accAfter, 'each cell\'s report.json gathered with its row');
    }

    const { spawnSync } = await import('child_process');
    const unreachable = spawnSync(process.execPath, [cli, 'experiment', config, '--out', out, '--queue', `redis://127.0.0.1:${await freePort()}`], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(unreachable.status, 1);
    assert.match(unreachable.stderr, /--queue: cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED/);

    const again = start([cli, 'experiment', config, '--out', out, '--queue', url]);
    procs.push(again.child);
    assert.equal(await again.exit, 0);
    assert.match(again.err(), /4 cells done earlier, 0 queued/);
    assert.equal(readResults(out).length, 4, 'a rerun adds nothing');

    // a cell that fails on every attempt (the worker has no CIFAR-10) ends the coordinator with its error
    const broken = path.join(root, 'broken.yaml');
    fs.writeFileSync(broken, GRID.replace('name: queued', 'name: broken').replace('[mnist]', '[cifar10]').replace(/  - (clp|\{ method: vardefense.*)\n/g, ''));
    const failing = start([cli, 'experiment', broken, '--out', path.join(root, 'broken'), '--queue', url]);
    procs.push(failing.child);
    assert.equal(await failing.exit, 1);
    assert.match(failing.err(), /failed after 3 attempts: cifar10 train split not found/);
    assert.match(failing.err(), /1 cell\(s\) failed \(\w+\); rerun the same command to retry them/);
  } finally {
    for (const p of procs) if (p.exitCode === null) try { process.kill(p === redis ? p.pid! : -p.pid!, 'SIGKILL'); } catch { /* gone */ }
    fs.rmSync(root, { recursive: true, force: true });
  }
});
