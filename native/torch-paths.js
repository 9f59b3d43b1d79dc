// Prints include dirs or link flags for binding.gyp. LIBTORCH selects another libtorch (e.g. a CUDA
// build unpacked from pytorch.org), as tch-rs does; unset means Debian's libtorch-dev under /usr.
'use strict';
const path = require('path');
const fs = require('fs');
const root = process.env.LIBTORCH;
const what = process.argv[2];
function debian() {
  const lib = '/usr/lib/x86_64-linux-gnu';
  return {
    include: ['/usr/include', '/usr/include/torch/csrc/api/include'],
    libDir: fs.existsSync(path.join(lib, 'libtorch.so')) ? lib : '/usr/lib',
  };
}
function custom(dir) {
  return {
    include: [path.join(dir, 'include'), path.join(dir, 'include/torch/csrc/api/include')],
    libDir: path.join(dir, 'lib'),
  };
}
const p = root ? custom(path.resolve(root)) : debian();
if (what === 'include') {
  console.log(p.include.join(' '));
} else if (what === 'libs') {
  const libs = ['-ltorch', '-ltorch_cpu', '-lc10'];
  // a CUDA build: force-link the CUDA kernels so their operators register at load time
  if (fs.existsSync(path.join(p.libDir, 'libtorch_cuda.so'))) libs.push('-Wl,--no-as-needed', '-ltorch_cuda', '-lc10_cuda', '-Wl,--as-needed');
  console.log([`-L${p.libDir}`, `-Wl,-rpath,${p.libDir}`, ...libs].join(' '));
} else {
  console.error('usage: node torch-paths.js include|libs');
  process.exit(2);
}
