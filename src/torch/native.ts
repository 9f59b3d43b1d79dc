// Loads the libtorch addon and applies the process-wide defaults (thread count = cores).
import * as os from 'os';
import * as path from 'path';

export type Handle = object & { readonly __tensorHandle: unique symbol };

export interface NativeStats {
  live: number;
  created: number;
  disposed: number;
  accountedBytes: number;
  operators: number;
}

export interface AutocastState { enabled: boolean; dtype: string; cache: boolean }

export interface NativeAddon {
  opId(name: string, overload: string): number;
  call(id: number, ...args: unknown[]): unknown;
  schema(id: number): string;
  overloads(name: string): string[];
  dispose(h: Handle): void;
  isDisposed(h: Handle): boolean;
  isTensor(v: unknown): boolean;
  shape(h: Handle): number[];
  dtype(h: Handle): string;
  device(h: Handle): string;
  isContiguous(h: Handle, memoryFormat?: number): boolean;
  suggestMemoryFormat(h: Handle): number;
  fromBytes(data: ArrayBufferView, dtype: string, shape: readonly number[]): Handle;
  bytes(h: Handle, copy?: boolean): ArrayBuffer;
  backward(h: Handle, grad?: Handle | null, retainGraph?: boolean): void;
  grad(h: Handle): Handle | null;
  setGrad(h: Handle, g: Handle | null): void;
  requiresGrad(h: Handle): boolean;
  setRequiresGrad(h: Handle, on: boolean): void;
  isLeaf(h: Handle): boolean;
  setGradEnabled(on: boolean): boolean;
  isGradEnabled(): boolean;
  inferenceMode<T>(fn: () => T): T;
  manualSeed(seed: number): void;
  setDeterministic(on: boolean): void;
  setNumThreads(n: number): void;
  setMkldnnEnabled(on: boolean): boolean;
  getNumThreads(): number;
  stats(): NativeStats;
  allocatorStats(): { caching: boolean; cachedBytes: number };
  emptyCache(): void;
  /** CPU autocast (thread-local; the cast cache is off while it is on); returns the previous state */
  setAutocast(enabled: boolean, dtype?: string | null): AutocastState;
  getAutocast(): AutocastState;
  buildInfo(): { torch: string; config: string; parallel: string; cuda: boolean; mkldnn: boolean };
}

function load(): NativeAddon {
  const root = path.resolve(__dirname, '..', '..', '..');
  const file = path.join(root, 'build', 'Release', 'vardefense_native.node');
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return require(file) as NativeAddon;
  } catch (e) {
    throw new Error(`cannot load the libtorch addon ${file}: ${(e as Error).message}\n` + 'run `bash scripts/setup.sh` to install libtorch and build it');
  }
}

/**
 * libtorch's OpenMP threads (libgomp) spin up to 300,000 rounds at every barrier before they sleep. When
 * another process holds one of the cores, each barrier then waits out a time slice, and small-op work
 * (the GAN defense's generators) ran over 50 times slower with 2 threads than alone. A spin of 10,000
 * kept the idle speed (docs/notes.md). Read by libgomp when the addon loads; the user's setting wins.
 */
export const OMP_SPIN_DEFAULT = '10000';
if (process.env.OMP_WAIT_POLICY === undefined && process.env.GOMP_SPINCOUNT === undefined) process.env.GOMP_SPINCOUNT = OMP_SPIN_DEFAULT;

export const native: NativeAddon = load();

export function defaultThreads(): number {
  const env = process.env.VARDEFENSE_THREADS;
  if (env !== undefined) {
    const n = Number(env);
    if (!Number.isInteger(n) || n < 1) throw new Error(`VARDEFENSE_THREADS must be a positive integer, got '${env}'`);
    return n;
  }
  return os.availableParallelism();
}

native.setNumThreads(defaultThreads());
