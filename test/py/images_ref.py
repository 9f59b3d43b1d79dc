# PIL/numpy side of the user-image tests (python3-pil, python3-numpy, python3-torchvision): writes an
# ImageFolder tree and .npz files, and what torchvision's ImageFolder with PIL's convert makes of them.
# Usage: python3 images_ref.py <dir>
import os, sys
import numpy as np, torch
from PIL import Image
from torchvision.datasets import ImageFolder
from torch_ref import save_st

# class names whose code-point order (Python's sorted) differs from a UTF-16 sort: U+FF21 < U+1F600
CLASSES = ['b', 'B', 'a2', 'a10', '\uff21', '\U0001F600']

def main(d):
    rng = np.random.default_rng(0)
    S = 8
    for k, c in enumerate(CLASSES):
        base = f'{d}/png/{c}'
        os.makedirs(f'{base}/nested', exist_ok=True)
        rgb = rng.integers(0, 256, (S, S, 3), dtype=np.uint8)
        Image.fromarray(rgb, 'RGB').save(f'{base}/rgb.png')
        Image.fromarray(rng.integers(0, 256, (S, S), dtype=np.uint8), 'L').save(f'{base}/gray.PNG')
        Image.fromarray(rng.integers(0, 256, (S, S, 4), dtype=np.uint8), 'RGBA').save(f'{base}/nested/rgba.png')
        if k % 2 == 0:
            Image.fromarray(rng.integers(0, 256, (S, S, 2), dtype=np.uint8), 'LA').save(f'{base}/la.png')
            p = Image.fromarray(rng.integers(0, 16, (S, S), dtype=np.uint8), 'P')
            p.putpalette(list(rng.integers(0, 256, 16 * 3, dtype=np.uint8)))
            p.save(f'{base}/palette.png')
        open(f'{base}/notes.txt', 'w').write('not an image: skipped, as torchvision skips it')
    for c in ['cat', 'dog']:
        os.makedirs(f'{d}/jpeg/{c}', exist_ok=True)
        # smooth images: JPEG decoders agree closely on them
        yy, xx = np.mgrid[0:16, 0:16]
        for i in range(3):
            img = np.stack([(xx * 8 + i * 20) % 256, (yy * 8) % 256, ((xx + yy) * 4 + 40 * i) % 256], -1).astype(np.uint8)
            Image.fromarray(img, 'RGB').save(f'{d}/jpeg/{c}/{i}.jpg', quality=90)
        Image.fromarray(((xx + yy) * 7).astype(np.uint8), 'L').save(f'{d}/jpeg/{c}/gray.jpeg', quality=90)
    out = {}
    for folder in ['png', 'jpeg']:
        for mode in ['L', 'RGB']:
            ds = ImageFolder(f'{d}/{folder}', loader=lambda p, mode=mode: Image.open(p).convert(mode))
            xs = [torch.from_numpy(np.array(img)).reshape(img.size[1], img.size[0], -1).permute(2, 0, 1) for img, _ in ds]
            out[f'{folder}.{mode}.x'] = torch.stack(xs).contiguous()
            out[f'{folder}.{mode}.y'] = torch.tensor([y for _, y in ds], dtype=torch.int64)
            with open(f'{d}/{folder}.{mode}.files', 'w') as f:
                f.write('\n'.join(os.path.relpath(p, f'{d}/{folder}') for p, _ in ds.samples))
        out[f'{folder}.classes'] = torch.tensor([len(ds.classes)])
    # npz: (N, H, W, C) uint8 with int64 labels, stored; (N, H, W) with int32 labels, compressed
    x3 = rng.integers(0, 256, (5, S, S, 3), dtype=np.uint8); y3 = np.array([0, 4, 2, 9, 1], dtype=np.int64)
    np.savez(f'{d}/rgb.npz', x=x3, y=y3)
    x1 = rng.integers(0, 256, (4, S, S), dtype=np.uint8); y1 = np.array([3, 0, 1, 2], dtype=np.int32)
    np.savez_compressed(f'{d}/gray.npz', x=x1, y=y1)
    np.savez(f'{d}/u8labels.npz', x=x1, y=y1.astype(np.uint8))
    out['npz.rgb.x'] = torch.from_numpy(x3).permute(0, 3, 1, 2).contiguous(); out['npz.rgb.y'] = torch.from_numpy(y3)
    out['npz.gray.x'] = torch.from_numpy(x1).unsqueeze(1).contiguous(); out['npz.gray.y'] = torch.from_numpy(y1.astype(np.int64))
    save_st(f'{d}/ref.safetensors', out)

if __name__ == '__main__':
    main(sys.argv[1])
