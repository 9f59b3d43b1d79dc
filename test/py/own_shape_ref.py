# PyTorch side of the own-shape test: python3 own_shape_ref.py <dir> <name> <size> <classes> <n>:
# a torchvision model for RGB images of <size> and <classes> classes (torchvision_zoo_ref.build) saved
# to <dir>/<name>.pt; <n> PNG images of <size>x<size> written as an ImageFolder <dir>/images/c00..,
# each in the folder of the class the model predicts for it (PIL -> ToTensor -> Normalize, as a user's
# loader), except one image for each class the model never predicts (a deliberate miss, so that every
# class folder has images); prints {"acc": ..., "n": ...}: the model's accuracy on that folder.
import json, os, sys
import numpy as np, torch
from PIL import Image
from torchvision import transforms
from torchvision_zoo_ref import build

MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)


def main(d, name, size, classes, n):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    m = build(name, 3, size, classes)
    m.eval()
    torch.save(m.state_dict(), f'{d}/{name}.pt')
    # smooth colour fields with some pixel noise: images the random model tells apart
    images = []
    for _ in range(n):
        small = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
        a = np.asarray(small.resize((size, size), Image.BILINEAR)).astype(np.int16) + rng.integers(-20, 21, (size, size, 3))
        images.append(Image.fromarray(a.clip(0, 255).astype(np.uint8)))
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(MEAN, STD)])
    with torch.no_grad():
        pred = m(torch.stack([tf(im) for im in images])).argmax(1).tolist()
    labels = list(pred)
    for c in range(classes):
        if c not in labels:
            i = next(i for i, l in enumerate(labels) if labels.count(l) > 1)
            labels[i] = c
    for i, (im, l) in enumerate(zip(images, labels)):
        os.makedirs(f'{d}/images/c{l:02d}', exist_ok=True)
        im.save(f'{d}/images/c{l:02d}/{i:04d}.png')
    print(json.dumps({'acc': sum(p == l for p, l in zip(pred, labels)) / n, 'n': n}))


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
