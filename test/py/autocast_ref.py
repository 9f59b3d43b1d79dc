# PyTorch side of the bf16 parity test: one SGD step of a ResNet-18 under
# torch.autocast('cpu', dtype=torch.bfloat16), backward outside the autocast block (PyTorch's recipe),
# and the same step in float32 for scale. Usage: python3 autocast_ref.py <dir> (reads config.json).
import json, sys
import torch, torch.nn as nn, torch.nn.functional as F
from torch_ref import save_st, seeded_resnet

def main(d):
    cfg = json.load(open(f'{d}/config.json'))
    m, x, y = seeded_resnet(d, cfg)
    ref = {'x': x, 'y': y}
    if cfg['channels_last']:  # as ours: channels-last activations (the weights too unless weights_contiguous)
        if not cfg.get('weights_contiguous'): m = m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    start = {k: v.clone() for k, v in m.state_dict().items()}
    for prec in ['fp32', 'bf16']:
        m.load_state_dict(start); m.train()
        opt = torch.optim.SGD(m.parameters(), lr=cfg['lr'], momentum=0.9, weight_decay=5e-4)
        opt.zero_grad()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=prec == 'bf16'):
            out = m(x); loss = F.cross_entropy(out, y)
        ref[f'{prec}.logits_dtype_is_bf16'] = torch.tensor([int(out.dtype == torch.bfloat16)])
        ref[f'{prec}.loss_dtype_is_f32'] = torch.tensor([int(loss.dtype == torch.float32)])
        loss.backward()
        ref[f'{prec}.logits'] = out.float(); ref[f'{prec}.loss'] = loss.float().reshape(1)
        for k, p in m.named_parameters(): ref[f'{prec}.grad.{k}'] = p.grad.clone()
        opt.step()
        for k, v in m.state_dict().items(): ref[f'{prec}.step1.{k}'] = v.clone()
    save_st(f'{d}/ref.safetensors', ref)

if __name__ == '__main__':
    main(sys.argv[1])
