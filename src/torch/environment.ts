// What a number was computed with: libtorch's thread count and the CPU kernels it can pick. Float
// results are reproducible only for the same threads AND kernels: oneDNN and OpenBLAS choose their
// kernels by instruction set, and after a few hundred SGD steps the last bits make another model.
import { cpuFlags } from './cpu-flags';
import * as os from 'os';
import { buildInfo, getNumThreads } from './tensor';
import { bf16Support, getPrecision, Precision } from './precision';

export interface ComputeEnvironment {
  threads: number;
  /** the CPU's model name */
  cpu: string;
  /** the widest vector instruction set the CPU reports (avx512f, avx2, avx, sse4_2, ...) */
  isa: string;
  /** ATen's own dispatch level (libtorch's "CPU capability usage") */
  atenCapability: string;
  /** kernel limits set in the environment (ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY, OPENBLAS_CORETYPE), when set */
  limits: Record<string, string>;
  libtorch: string;
  /** the precision of the numbers: fp32, or bf16 (autocast, docs/engine.md) */
  precision: Precision;
  /** the CPU's bfloat16 instructions (amx_bf16, avx512_bf16, none); recorded with bf16 only */
  bf16Hardware?: string;
}

const ISA_ORDER = ['avx512f', 'avx2', 'avx', 'sse4_2', 'sse4_1'];
const LIMIT_VARS = ['ONEDNN_MAX_CPU_ISA', 'DNNL_MAX_CPU_ISA', 'ATEN_CPU_CAPABILITY', 'OPENBLAS_CORETYPE', 'MKL_ENABLE_INSTRUCTIONS'];

let cached: Omit<ComputeEnvironment, 'threads' | 'precision' | 'bf16Hardware'> | null = null;

export function computeEnvironment(): ComputeEnvironment {
  if (!cached) {
    const flags = cpuFlags(), b = buildInfo();
    cached = {
      cpu: os.cpus()[0]?.model.trim() ?? 'unknown',
      isa: ISA_ORDER.find((f) => flags.has(f)) ?? (os.arch() === 'x64' ? 'unknown' : os.arch()),
      atenCapability: /CPU capability usage:\s*(\S+)/.exec(b.config)?.[1] ?? 'unknown',
      limits: Object.fromEntries(LIMIT_VARS.filter((v) => process.env[v]).map((v) => [v, process.env[v]!])),
      libtorch: b.torch,
    };
  }
  const precision = getPrecision();
  return { threads: getNumThreads(), ...cached, precision, ...(precision === 'bf16' ? { bf16Hardware: bf16Support().hardware } : {}) };
}
