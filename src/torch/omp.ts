// libgomp's spin count, the toolkit's default (no addon loaded here, so a bench can give it to PyTorch
// without loading libtorch).

/**
 * libtorch's OpenMP threads (libgomp) spin up to 300,000 rounds at every barrier before they sleep. When
 * another process holds one of the cores, each barrier then waits out a time slice, and small-op work
 * (the GAN defense's generators) ran over 50 times slower with 2 threads than alone. A spin of 10,000
 * kept the idle speed (docs/notes.md). Read by libgomp when the addon loads; the user's setting wins.
 */
export const OMP_SPIN_DEFAULT = '10000';

/** Sets GOMP_SPINCOUNT in `env` to the default unless GOMP_SPINCOUNT or OMP_WAIT_POLICY is set there; returns env. */
export function ompSpinDefault(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (env.OMP_WAIT_POLICY === undefined && env.GOMP_SPINCOUNT === undefined) env.GOMP_SPINCOUNT = OMP_SPIN_DEFAULT;
  return env;
}
