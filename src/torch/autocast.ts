// The precision the engine computes in now: libtorch's CPU autocast state, read through the addon. Kept
// apart from precision.ts (which probes the CPU's flags in /proc/cpuinfo) so that the layers, and so
// the defenses, can ask it without reaching the file system.
import { native } from './native';

export const PRECISIONS = ['fp32', 'bf16'] as const;
export type Precision = (typeof PRECISIONS)[number];

/** The precision the engine computes in now (on this thread: Node's main thread). */
export function getPrecision(): Precision {
  const s = native.getAutocast();
  return s.enabled && s.dtype === 'bfloat16' ? 'bf16' : 'fp32';
}
