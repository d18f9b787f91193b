#!/usr/bin/env python3
"""Writes a Triton-style model folder holding an MLP that does more work per byte than the demo.

    python3 bench/make_mlp_model.py OUT_DIR [--hidden 4096] [--layers 2] [--max_batch_size 256]

OUT_DIR/config.pbtxt and OUT_DIR/1/model.pt: the demo model's interface (INPUT0 and OUTPUT0,
FP32 [batch, 32, 256]), but per token 256 -> hidden -> ... -> hidden -> 256 with `layers`
hidden layers. The demo (hidden 512, one layer) moves 64 KiB per sample for 17 MFLOP, so a
GPU runs it as fast as the bytes cross; with hidden 4096 and 2 layers a sample costs 1.2
GFLOP for the same bytes. `coalesce-engine-bench --model_dir=OUT_DIR` then shows the engine
against a model whose compute, not its copies, sets the ceiling.

The weights are PyTorch's default initialisation from a fixed seed; the file is TorchScript, so
the LibTorch that loads it must be at least as new as the torch that wrote it.
"""
import argparse
import os

import torch


class Mlp(torch.nn.Module):
    def __init__(self, width: int, hidden: int, layers: int):
        super().__init__()
        sizes = [width] + [hidden] * layers + [width]
        self.linears = torch.nn.ModuleList(
            torch.nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.linears) - 1
        for i, linear in enumerate(self.linears):
            x = linear(x)
            if i != last:
                x = torch.relu(x)
        return x


CONFIG = """# Written by bench/make_mlp_model.py: per token 256 -> {hidden} x {layers} -> 256.
name: "{name}"
platform: "pytorch_libtorch"
max_batch_size: {max_batch_size}
input [ {{ name: "INPUT0" data_type: TYPE_FP32 dims: [ 32, 256 ] }} ]
output [ {{ name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 32, 256 ] }} ]
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--max_batch_size", type=int, default=256)
    args = parser.parse_args()
    if args.hidden < 1 or args.layers < 1 or args.max_batch_size < 1:
        parser.error("--hidden, --layers and --max_batch_size must be >= 1")

    torch.manual_seed(7)
    module = torch.jit.script(Mlp(256, args.hidden, args.layers).eval())
    os.makedirs(os.path.join(args.out_dir, "1"), exist_ok=True)
    module.save(os.path.join(args.out_dir, "1", "model.pt"))
    name = os.path.basename(os.path.normpath(args.out_dir))
    with open(os.path.join(args.out_dir, "config.pbtxt"), "w") as f:
        f.write(CONFIG.format(name=name, hidden=args.hidden, layers=args.layers,
                              max_batch_size=args.max_batch_size))
    flops = 2 * 32 * (256 * args.hidden * 2 + args.hidden * args.hidden * (args.layers - 1))
    print(f"{args.out_dir}: 256 -> {args.hidden} x {args.layers} -> 256 per token, "
          f"{flops / 1e9:.2f} GFLOP per sample")


if __name__ == "__main__":
    main()
