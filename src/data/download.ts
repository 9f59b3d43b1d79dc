// Dataset downloads from the official locations: digest-verified, atomic (a partial download is a
// `.partial` file, never the real name), resumed with an HTTP Range request where the server allows.
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as https from 'https';
import * as path from 'path';
import * as tar from 'tar';
import { DatasetName } from './datasets';

export interface RemoteFile {
  url: string;
  /** file name on disk */
  name: string;
  /** expected digest: SHA-256 where the publisher gives one, else the published MD5 */
  digest: { algorithm: 'sha256' | 'md5'; hex: string };
  /** a tar.gz archive to unpack after verification */
  untar?: boolean;
}

const MNIST = 'https://ossci-datasets.s3.amazonaws.com/mnist/';
const FASHION = 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/';
const sha = (hex: string) => ({ algorithm: 'sha256' as const, hex });

export const SOURCES: Record<DatasetName, RemoteFile[]> = {
  mnist: [
    ['train-images-idx3-ubyte.gz', '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609'],
    ['train-labels-idx1-ubyte.gz', '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c'],
    ['t10k-images-idx3-ubyte.gz', '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6'],
    ['t10k-labels-idx1-ubyte.gz', 'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6'],
  ].map(([name, hex]) => ({ url: MNIST + name, name, digest: sha(hex) })),
  'fashion-mnist': [
    ['train-images-idx3-ubyte.gz', '3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84'],
    ['train-labels-idx1-ubyte.gz', 'a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845'],
    ['t10k-images-idx3-ubyte.gz', '346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073'],
    ['t10k-labels-idx1-ubyte.gz', '67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5'],
  ].map(([name, hex]) => ({ url: FASHION + name, name, digest: sha(hex) })),
  cifar10: [{
    url: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz', name: 'cifar-10-binary.tar.gz', untar: true,
    digest: sha('c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd'),
  }],
  cifar100: [{
    // the publisher gives only an MD5 for this archive
    url: 'https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz', name: 'cifar-100-binary.tar.gz', untar: true,
    digest: { algorithm: 'md5', hex: '03b5dce01913d631647c71ecec9e9cb8' },
  }],
};

export function fileDigest(file: string, algorithm: 'sha256' | 'md5'): string {
  const h = crypto.createHash(algorithm);
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.alloc(1 << 20);
  try {
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0;) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

function get(url: string, headers: Record<string, string>, redirects = 5): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const lib = url.startsWith('https:') ? https : http;
    const req = lib.get(url, { headers }, (res) => {
      const loc = res.headers.location;
      if (res.statusCode && res.statusCode >= 300 && res.statusCode < 400 && loc) {
        res.resume();
        if (redirects <= 0) return reject(new Error(`${url}: too many redirects`));
        return resolve(get(new URL(loc, url).toString(), headers, redirects - 1));
      }
      resolve(res);
    });
    req.on('error', (e) => reject(new Error(`${url}: ${e.message}`)));
  });
}

export interface DownloadProgress { (received: number, total: number | null): void }

/**
 * Downloads f.url into dir/f.name. An existing verified file is kept; a `.partial` file is resumed.
 * The final name appears only after the digest matched.
 */
export async function downloadFile(f: RemoteFile, dir: string, onProgress?: DownloadProgress): Promise<string> {
  fs.mkdirSync(dir, { recursive: true });
  const dest = path.join(dir, f.name);
  if (fs.existsSync(dest) && fileDigest(dest, f.digest.algorithm) === f.digest.hex) return dest;
  const partial = `${dest}.partial`;
  const have = fs.existsSync(partial) ? fs.statSync(partial).size : 0;
  const res = await get(f.url, have > 0 ? { Range: `bytes=${have}-` } : {});
  if (res.statusCode === 416) {
    res.resume(); // the partial file already holds everything; verify it below
  } else {
    if (res.statusCode !== 200 && res.statusCode !== 206) {
      res.resume();
      throw new Error(`${f.url}: HTTP ${res.statusCode}`);
    }
    const append = res.statusCode === 206;
    const start = append ? have : 0;
    const length = res.headers['content-length'] ? Number(res.headers['content-length']) : null;
    const total = length === null ? null : start + length;
    const out = fs.createWriteStream(partial, { flags: append ? 'a' : 'w' });
    let received = start;
    // written bytes are flushed and kept even when the connection breaks, so the next call resumes
    const failed = await new Promise<Error | null>((resolve) => {
      let error: Error | null = null;
      res.on('data', (chunk: Buffer) => { received += chunk.length; onProgress?.(received, total); });
      res.on('aborted', () => { error = error ?? new Error('connection aborted'); });
      res.on('error', (e) => { error = error ?? e; });
      res.on('close', () => out.end());
      out.on('close', () => resolve(error));
      out.on('error', (e) => resolve(e));
      res.pipe(out, { end: false });
    });
    if (failed && (total === null || received >= total))
      throw new Error(`${f.url}: ${failed.message} after ${received} bytes; ${partial} is kept and the next download resumes it`);
    if (total !== null && received < total)
      throw new Error(`${f.url}: connection closed after ${received} of ${total} bytes; ${partial} is kept and the next download resumes it`);
  }
  const got = fileDigest(partial, f.digest.algorithm);
  if (got !== f.digest.hex) {
    fs.rmSync(partial, { force: true });
    throw new Error(`${f.url}: ${f.digest.algorithm} mismatch (expected ${f.digest.hex}, got ${got}); the corrupt download was removed`);
  }
  fs.renameSync(partial, dest);
  return dest;
}

/** Downloads (and unpacks) every file of a dataset into dataRoot/<name>. */
export async function downloadDataset(name: DatasetName, dataRoot: string, o: { baseUrl?: string; onProgress?: (file: string, received: number, total: number | null) => void } = {}): Promise<string[]> {
  const dir = path.join(dataRoot, name);
  const out: string[] = [];
  for (const src of SOURCES[name]) {
    const f = o.baseUrl ? { ...src, url: new URL(src.name, o.baseUrl.endsWith('/') ? o.baseUrl : `${o.baseUrl}/`).toString() } : src;
    const file = await downloadFile(f, dir, (r, t) => o.onProgress?.(f.name, r, t));
    if (f.untar) await tar.x({ file, cwd: dir });
    out.push(file);
  }
  return out;
}
