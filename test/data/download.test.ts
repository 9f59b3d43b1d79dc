// Downloads against a loopback HTTP server: verified, truncated-then-resumed, and corrupted files.
import { test } from 'node:test';
import * as assert from 'assert/strict';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import { AddressInfo } from 'net';
import * as path from 'path';
import { downloadFile, RemoteFile } from '../../src/data/download';
import { tmpDir } from '../helpers';

const body = crypto.randomBytes(200_000);
const digest = { algorithm: 'sha256' as const, hex: crypto.createHash('sha256').update(body).digest('hex') };

/** Serves /good, /corrupt (one flipped byte) and /flaky (cuts the first transfer in half); honours Range. */
function server(): Promise<{ url: string; close: () => void; ranges: string[] }> {
  const ranges: string[] = [];
  let flakyCalls = 0;
  const srv = http.createServer((req, res) => {
    let data = body;
    if (req.url === '/corrupt') { data = Buffer.from(body); data[1234] ^= 0xff; }
    if (req.url === '/redirect') { res.writeHead(302, { location: '/good' }); res.end(); return; }
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m) { start = Number(m[1]); ranges.push(req.headers.range!); }
    const part = data.subarray(start);
    res.writeHead(m ? 206 : 200, { 'content-length': part.length });
    if (req.url === '/flaky' && flakyCalls++ === 0) {
      res.write(part.subarray(0, part.length / 2), () => res.destroy());
      return;
    }
    res.end(part);
  });
  return new Promise((resolve) => srv.listen(0, '127.0.0.1', () => {
    const { port } = srv.address() as AddressInfo;
    resolve({ url: `http://127.0.0.1:${port}`, close: () => srv.close(), ranges });
  }));
}

test('a download is verified, atomic and resumed after a cut connection', async () => {
  const s = await server();
  const dir = tmpDir('dl');
  try {
    const good: RemoteFile = { url: `${s.url}/redirect`, name: 'good.bin', digest };
    const file = await downloadFile(good, dir);
    assert.equal(Buffer.compare(fs.readFileSync(file), body), 0);
    assert.equal(await downloadFile({ ...good, url: `${s.url}/nothing-fetched` }, dir), file, 'a verified file is not fetched again');

    const flaky: RemoteFile = { url: `${s.url}/flaky`, name: 'flaky.bin', digest };
    const cut = await downloadFile(flaky, dir).then(() => -1, (e: Error) => {
      const m = /connection closed after (\d+) of 200000 bytes; .*flaky\.bin\.partial is kept/.exec(e.message);
      assert.ok(m, e.message);
      return Number(m[1]);
    });
    assert.ok(cut > 0 && cut <= 100_000, `cut after ${cut} bytes`);
    assert.ok(!fs.existsSync(path.join(dir, 'flaky.bin')), 'no file under the final name');
    assert.equal(fs.statSync(path.join(dir, 'flaky.bin.partial')).size, cut);
    const resumed = await downloadFile(flaky, dir);
    assert.deepEqual(s.ranges, [`bytes=${cut}-`], 'the second request asked only for the rest');
    assert.equal(Buffer.compare(fs.readFileSync(resumed), body), 0);

    const corrupt: RemoteFile = { url: `${s.url}/corrupt`, name: 'corrupt.bin', digest };
    await assert.rejects(downloadFile(corrupt, dir), /corrupt: sha256 mismatch .*the corrupt download was removed/);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['flaky.bin', 'good.bin']);
  } finally {
    s.close();
    fs.rmSync(dir, { recursive: true });
  }
});
