// Loads the libtorch addon and applies the process-wide defaults (thread count = cores).
import * as os from 'os';
import * as path from 'path';
import { ompSpinDefault } from './omp';

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

// libgomp reads its spin count when the addon loads (src/torch/omp.ts)
ompSpinDefault(process.env);

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
