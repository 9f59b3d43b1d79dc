# torchvision 0.14's Resize(n) + CenterCrop(m) on uint8 [C, H, W] tensors (antialias=True), and on the
# same pixels as a PIL image (torchvision's ImageFolder loader path): the references of
# test/data/transforms.test.ts. Reads {"shape": [C, H, W], "data": [...], "resize": n, "crop": m} from argv[1].
import json, sys
import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

a = json.load(open(sys.argv[1]))
x = torch.tensor(a['data'], dtype=torch.uint8).reshape(a['shape'])
t = T.Compose([T.Resize(a['resize'], antialias=True), T.CenterCrop(a['crop'])])
pil = Image.fromarray(x[0].numpy() if x.shape[0] == 1 else x.permute(1, 2, 0).numpy())
p = torch.from_numpy(np.array(T.Compose([T.Resize(a['resize']), T.CenterCrop(a['crop'])])(pil)))
p = p.unsqueeze(0) if p.ndim == 2 else p.permute(2, 0, 1)
print(json.dumps({'tensor': t(x).flatten().tolist(), 'pil': p.flatten().tolist(), 'shape': list(t(x).shape)}))
