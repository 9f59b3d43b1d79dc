// Scale-out: the grid's cells as BullMQ jobs on Redis. `vardefense experiment --queue <url>` enqueues the
// cells not recorded yet and gathers every result (results.jsonl/csv and each cell's report.json) in its
// own --out; `vardefense worker --queue <url>` runs cells on any machine, each in a child process so a
// long synchronous cell never blocks the lock renewal. A worker killed mid-cell lets its lock expire;
// another worker's stalled-job check puts the cell back in the queue and it is run again.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Job, JobsOptions, Queue, Worker } from 'bullmq';
import IORedis from 'ioredis';
import { writeFileAtomic } from '../util/atomic';
import { Cell, expandCells, Experiment } from './config';
import { append, CellResult, readResults, reportOf } from './runner';

export const QUEUE_NAME = 'vardefense-cells';

/** What a job carries: the whole (validated) experiment, so a worker needs no file from the coordinator. */
export interface CellJob { experiment: Experiment; cell: string }
/** What a job returns: the result row, the cell's report.json text and who ran it. */
export interface CellJobResult { result: CellResult; report: string; worker: string }

export function connectionOf(url: string): { url: string; maxRetriesPerRequest: null } {
  if (!/^rediss?:\/\//.test(url)) throw new Error(`--queue: expected a Redis URL like redis://host:6379, got '${url}'`);
  return { url, maxRetriesPerRequest: null };
}

/** Fails fast with a clear message instead of BullMQ's endless reconnect attempts. */
export async function checkRedis(url: string): Promise<void> {
  const client = new IORedis(connectionOf(url).url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null, connectTimeout: 5000 });
  let cause = '';
  client.on('error', (e: Error) => { cause ||= e.message; });
  try {
    await client.connect();
    await client.ping();
  } catch (e) {
    throw new Error(`--queue: cannot reach Redis at ${url}: ${cause || (e as Error).message}`);
  } finally {
    client.disconnect();
  }
}

/** A job id per experiment and cell: re-enqueueing a cell that is queued, running or done is a no-op. */
export const jobId = (e: Experiment, cell: Cell): string => `${e.name}.${cell.id}`;

export interface QueueHooks {
  log?: (line: string) => void;
  onCell?: (r: CellResult, done: number, total: number, worker: string) => void;
}

/** Enqueues the cells not in <out>/results.jsonl, waits for all of them and records their results. */
export async function runExperimentQueued(e: Experiment, out: string, url: string, hooks: QueueHooks = {}, pollMs = 500): Promise<CellResult[]> {
  const cells = expandCells(e);
  fs.mkdirSync(out, { recursive: true });
  writeFileAtomic(path.join(out, 'experiment.json'), JSON.stringify(e, null, 1));
  const recorded = new Map(readResults(out).map((r) => [r.cell, r]));
  await checkRedis(url);
  const queue = new Queue<CellJob, CellJobResult>(QUEUE_NAME, { connection: connectionOf(url) });
  try {
    const todo = cells.filter((c) => !recorded.has(c.id));
    const jobOf = (c: Cell): { name: string; data: CellJob; opts: JobsOptions } => ({
      name: c.id, data: { experiment: e, cell: c.id },
      opts: { jobId: jobId(e, c), attempts: 3, backoff: { type: 'fixed', delay: 1000 }, removeOnComplete: false, removeOnFail: false },
    });
    await queue.addBulk(todo.map(jobOf));
    hooks.log?.(`${cells.length - todo.length} cells done earlier, ${todo.length} queued on ${url} (queue '${QUEUE_NAME}'); start workers with: vardefense worker --queue ${url}`);
    const failed: Cell[] = [];
    let pending = todo;
    while (pending.length > 0) {
      const still: Cell[] = [];
      for (const c of pending) {
        // the state first, then the job: a job read before a last attempt fails would say too few attempts
        const state = await queue.getJobState(jobId(e, c));
        const job = state === 'unknown' ? undefined : await Job.fromId<CellJob, CellJobResult>(queue, jobId(e, c));
        if (state === 'completed' && job) {
          const { result, report, worker } = job.returnvalue;
          writeFileAtomic(reportOf(out, c), report);
          append(out, result);
          recorded.set(c.id, result);
          hooks.onCell?.(result, recorded.size, cells.length, worker);
        } else if (state === 'failed' && job) {
          failed.push(c);
          hooks.log?.(`cell ${c.id} (${c.attack}, ${c.method}) failed after ${job.attemptsMade} attempts: ${job.failedReason}`);
        } else {
          if (!job) await queue.add(c.id, jobOf(c).data, jobOf(c).opts); // removed from Redis meanwhile: queue it again
          still.push(c);
        }
      }
      pending = still;
      if (pending.length > 0) await new Promise((r) => setTimeout(r, pollMs));
    }
    if (failed.length > 0) {
      // a rerun retries them: drop the failed jobs so their ids can be queued again
      for (const c of failed) await (await Job.fromId(queue, jobId(e, c)))?.remove();
      throw new Error(`${failed.length} cell(s) failed (${failed.map((c) => c.id).join(', ')}); rerun the same command to retry them`);
    }
    return cells.map((c) => recorded.get(c.id)!);
  } finally {
    await queue.close();
  }
}

export interface WorkerOptions {
  url: string;
  /** root for experiments' models and cells on this machine: <out>/<experiment name>/ */
  out: string;
  dataDir?: string;
  concurrency?: number;
  /** ms a cell's lock lives without renewal; a killed worker's cell is retried after about this long */
  lockDuration?: number;
  log?: (line: string) => void;
}

export const workerName = (): string => `${os.hostname()}:${process.pid}`;

/** Starts a worker once Redis answers; cells run in child processes (BullMQ's sandboxed processors). */
export async function startWorker(o: WorkerOptions): Promise<Worker<CellJob, CellJobResult>> {
  await checkRedis(o.url);
  process.env.VARDEFENSE_WORKER_OUT = path.resolve(o.out);
  if (o.dataDir) process.env.VARDEFENSE_DATA_DIR = path.resolve(o.dataDir);
  process.env.VARDEFENSE_WORKER_NAME = workerName();
  const lockDuration = o.lockDuration ?? 30_000;
  const worker = new Worker<CellJob, CellJobResult>(QUEUE_NAME, path.join(__dirname, 'cell-processor.js'), {
    connection: connectionOf(o.url), concurrency: o.concurrency ?? 1, lockDuration, stalledInterval: lockDuration, maxStalledCount: 2,
    useWorkerThreads: false,
  });
  worker.on('active', (job) => o.log?.(`${workerName()}: cell ${job.data.cell} of ${job.data.experiment.name} started (attempt ${job.attemptsMade + 1}` +
    `${job.stalledCounter ? `, after ${job.stalledCounter} stalled run(s): a worker died in it` : ''})`));
  worker.on('completed', (job) => o.log?.(`${workerName()}: cell ${job.data.cell} done`));
  worker.on('failed', (job, err) => o.log?.(`${workerName()}: cell ${job?.data.cell} failed: ${err.message}`));
  worker.on('error', (err) => o.log?.(`${workerName()}: ${err.message}`));
  return worker;
}
