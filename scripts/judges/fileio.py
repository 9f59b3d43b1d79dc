# Reading and writing for the judge factory: IDX datasets, safetensors (parsed here: python3-safetensors
# is not a Debian dependency), 8-bit grayscale PNGs, .npz, and atomic writes (temp file + rename).
import gzip, io, json, os, struct, tempfile
import numpy as np
import torch

DATASETS = {
    # the toolkit's default normalisation (src/data/datasets.ts), so no --norm flags are needed unless a
    # recipe asks for another one
    'fashion-mnist': {'dir': '/usr/share/datasets/fashion-mnist', 'mean': 0.286, 'std': 0.353, 'classes': 10, 'size': 28},
    'mnist': {'dir': '/usr/share/datasets/mnist', 'mean': 0.1307, 'std': 0.3081, 'classes': 10, 'size': 28},
}


def read_idx(path):
    raw = open(path, 'rb').read()
    if path.endswith('.gz'): raw = gzip.decompress(raw)
    zero, dtype, ndim = raw[0:2], raw[2], raw[3]
    if zero != b'\0\0' or dtype != 0x08: raise ValueError(f'{path}: not an unsigned-byte IDX file')
    dims = struct.unpack('>' + 'I' * ndim, raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)): raise ValueError(f'{path}: {data.size} bytes for shape {dims}')
    return data.reshape(dims).copy()


def load_split(root, split):
    """uint8 images [N, 1, H, W] and int64 labels [N] of the train or test split."""
    prefix = 'train' if split == 'train' else 't10k'
    def find(base):
        for p in (f'{root}/{base}', f'{root}/{base}.gz'):
            if os.path.exists(p): return p
        raise FileNotFoundError(f'{root}: no {base}[.gz] (the {split} split)')
    x = read_idx(find(f'{prefix}-images-idx3-ubyte'))
    y = read_idx(find(f'{prefix}-labels-idx1-ubyte')).astype(np.int64)
    return x[:, None], y


def write_atomic(path, write):
    """write(tmp_path) then rename over path: a reader never sees half a file."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix='.' + os.path.basename(path) + '.')
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0); os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp): os.unlink(tmp)
        raise


def write_json(path, obj):
    def w(tmp):
        with open(tmp, 'w') as f: f.write(json.dumps(obj, indent=2) + '\n')
    write_atomic(path, w)


def write_png(path, img):
    """An 8-bit grayscale (L) PNG of a uint8 [H, W] array."""
    from PIL import Image
    assert img.dtype == np.uint8 and img.ndim == 2
    write_atomic(path, lambda tmp: Image.fromarray(img, mode='L').save(tmp, format='PNG'))


def read_png(path):
    from PIL import Image
    return np.asarray(Image.open(path).convert('L'), dtype=np.uint8)


def write_npz(path, **arrays):
    def w(tmp):
        with open(tmp, 'wb') as f: np.savez_compressed(f, **arrays)
    write_atomic(path, w)


def save_state_dict(path, sd):
    write_atomic(path, lambda tmp: torch.save(sd, tmp))


ST_DTYPES = {'F32': torch.float32, 'F64': torch.float64, 'F16': torch.float16, 'BF16': torch.bfloat16,
             'I64': torch.int64, 'I32': torch.int32, 'I16': torch.int16, 'I8': torch.int8, 'U8': torch.uint8, 'BOOL': torch.bool}


def read_safetensors(path):
    """{name: tensor} of a .safetensors file: 8-byte little-endian header length, JSON header, raw bytes."""
    data = open(path, 'rb').read()
    if len(data) < 8: raise ValueError(f'{path}: too short for safetensors')
    n = struct.unpack('<Q', data[:8])[0]
    if 8 + n > len(data): raise ValueError(f'{path}: header length {n} past the end of the file')
    header = json.loads(data[8:8 + n])
    body = memoryview(data)[8 + n:]
    out = {}
    for k, e in header.items():
        if k == '__metadata__': continue
        if e['dtype'] not in ST_DTYPES: raise ValueError(f'{path}: {k}: dtype {e["dtype"]} not supported')
        a, b = e['data_offsets']
        if not 0 <= a <= b <= len(body): raise ValueError(f'{path}: {k}: offsets {a}..{b} outside the data')
        t = torch.frombuffer(bytearray(body[a:b]), dtype=ST_DTYPES[e['dtype']]) if b > a else torch.empty(0, dtype=ST_DTYPES[e['dtype']])
        out[k] = t.reshape(e['shape'])
    return out


def load_weights(path):
    if path.endswith('.safetensors'): return read_safetensors(path)
    sd = torch.load(path, map_location='cpu')
    if not isinstance(sd, dict): raise ValueError(f'{path}: not a state dict')
    return sd
