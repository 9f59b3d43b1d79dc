// Mixed precision as PyTorch's torch.autocast('cpu', dtype=torch.bfloat16): libtorch's AutocastCPU
// dispatch key casts per operator (convolutions, linear and matmuls to bfloat16; losses such as
// cross_entropy, mse_loss, kl_div and nll_loss to float32; everything else runs in the dtype it is
// given), so code written for float32 runs unchanged. Parameters, their gradients and the optimiser's
// state stay float32 (the casts are differentiable). The backward pass runs with autocast off (the addon
// turns it off around backward), as in PyTorch's recipe, where backward runs outside the autocast block.
import { getPrecision, Precision, PRECISIONS } from './autocast';
import { cpuFlags } from './cpu-flags';
import { native } from './native';
import * as F from './functional';
import { randn, scope } from './tensor';

export { getPrecision, PRECISIONS } from './autocast';
export type { Precision } from './autocast';

/** The oneDNN instruction-set names at or above which bfloat16 has hardware support (oneDNN 2.x names). */
const ONEDNN_BF16_ISAS = ['AVX512_CORE_BF16', 'AVX512_CORE_FP16', 'AVX512_CORE_AMX', 'AVX512_CORE_AMX_FP16', 'AVX10_1_512', 'AVX10_1_512_AMX', 'AVX10_1_512_AMX_FP16', 'ALL'];

export interface Bf16Support {
  ok: boolean;
  /** the CPU's bfloat16 instructions: 'amx_bf16', 'avx512_bf16' or 'none' */
  hardware: 'amx_bf16' | 'avx512_bf16' | 'none';
  /** why bf16 is refused (when not ok) */
  reason?: string;
}

let support: Bf16Support | null = null;

/**
 * Whether bf16 is worth running here. It needs bfloat16 instructions (AVX512-BF16 or AMX) that oneDNN is
 * allowed to use: without them oneDNN either emulates bfloat16 convolutions on AVX-512 (measured 3x
 * SLOWER than float32 on the Xeon of docs/engine.md) or has no bfloat16 convolution at all (with
 * ONEDNN_MAX_CPU_ISA=AVX2 libtorch throws 'could not create a primitive descriptor iterator'), and on
 * a CPU without AVX-512 libtorch falls back to its reference convolution. VARDEFENSE_BF16=force runs bf16
 * anyway wherever the probe convolution works.
 */
export function bf16Support(): Bf16Support {
  if (support) return support;
  const flags = cpuFlags();
  const hardware: Bf16Support['hardware'] = flags.has('amx_bf16') ? 'amx_bf16' : flags.has('avx512_bf16') ? 'avx512_bf16' : 'none';
  const force = process.env.VARDEFENSE_BF16 === 'force';
  const limitVar = ['ONEDNN_MAX_CPU_ISA', 'DNNL_MAX_CPU_ISA'].find((v) => process.env[v]);
  const limit = limitVar ? process.env[limitVar]!.toUpperCase() : null;
  let reason: string | undefined;
  if (hardware === 'none' && !force) reason = 'this CPU has neither AVX512-BF16 nor AMX instructions';
  else if (limit && !ONEDNN_BF16_ISAS.includes(limit) && !force) reason = `${limitVar}=${process.env[limitVar!]} keeps oneDNN from the CPU's bfloat16 instructions`;
  if (!reason) {
    // the probe: a convolution and a linear layer under autocast, as a model runs them
    const prev = native.setAutocast(true, 'bfloat16');
    try {
      scope(() => {
        const y = F.conv2d(randn([2, 8, 6, 6]), randn([8, 8, 3, 3]), null, { padding: 1 });
        const z = F.linear(y.flatten(1), randn([4, 288]));
        if (y.dtype !== 'bfloat16' || z.dtype !== 'bfloat16') throw new Error(`autocast gave ${y.dtype} and ${z.dtype}`);
      });
    } catch (e) {
      reason = `libtorch's bfloat16 convolution failed here (${(e as Error).message.split('\n')[0]})`;
    } finally {
      native.setAutocast(prev.enabled, prev.dtype);
    }
  }
  support = reason ? { ok: false, hardware, reason } : { ok: true, hardware };
  return support;
}

/** Throws a message naming the reason when bf16 cannot run well here. */
export function assertPrecision(p: Precision): void {
  if (!(PRECISIONS as readonly string[]).includes(p)) throw new Error(`precision must be one of ${PRECISIONS.join(', ')}, got '${p}'`);
  if (p !== 'bf16') return;
  const s = bf16Support();
  if (!s.ok) throw new Error(`--precision bf16 is not available: ${s.reason}; use --precision fp32 (the default), or set VARDEFENSE_BF16=force to run bfloat16 anyway (emulated, slower than fp32)`);
}

/** Sets the precision for what follows (checked: bf16 refuses where it cannot run well); returns the previous one. */
export function setPrecision(p: Precision): Precision {
  assertPrecision(p);
  const prev = getPrecision();
  native.setAutocast(p === 'bf16', 'bfloat16');
  return prev;
}

/** Runs fn in precision p (fp32: autocast off, even inside a bf16 block) and restores the previous state. */
export function withPrecision<T>(p: Precision | undefined, fn: () => T): T {
  const want = p ?? 'fp32';
  if (want === getPrecision()) return fn();
  const prev = setPrecision(want);
  try {
    return fn();
  } finally {
    native.setAutocast(prev === 'bf16', 'bfloat16');
  }
}
