#!/usr/bin/env python3
"""Writes the benchmark models of issue 19 as a Triton-style model repository.

    python3 bench/make_models.py OUT_REPO [--models resnet50,encoder] [--encoder_layers 12]
        [--encoder_hidden 768] [--encoder_heads 12] [--max_batch_size 128]
        [--encoder_dtype fp32|fp16] [--cuda_graphs] [--encoder_padding]
        [--encoder_pad_buckets 16,32,64,128,256,512]

OUT_REPO/<model>/config.pbtxt and OUT_REPO/<model>/1/model.pt, for coalesce-server
--model_repository=OUT_REPO (or Triton's PyTorch backend):

  resnet50  torchvision.models.resnet50(weights=None), traced: input FP32 [3, 224, 224],
            output FP32 [1000] (logits). Needs torchvision; there is no copy of it here, so
            without torchvision the script stops and says so.
  encoder   a BERT-base-sized encoder written in plain torch and scripted, so that one file
            runs every sequence length: inputs input_ids and attention_mask, INT64 [-1]
            (token ids below 30522; mask 1 for a token, 0 for padding), output pooled, FP32
            [768] (tanh of a dense layer over the first token, as BERT's pooler). Attention is
            written out (matmul, softmax) rather than nn.MultiheadAttention, whose fused paths
            differ between PyTorch releases; the padding mask is added as -10000, as BERT does,
            so that a row of zeros gives numbers rather than NaN.

The weights are PyTorch's default initialisation from a fixed seed: nothing is downloaded, and
random weights cost what trained ones do. The files are TorchScript, so the LibTorch that loads
them must be at least as new as the torch that wrote them.

Precision: coalesce's --precision converts only what a model declares TYPE_FP32 (docs/
model-repository.md), so ResNet-50 follows the server's precision (fp16 on CUDA by default)
while the encoder, whose inputs are INT64, runs as written. --encoder_dtype fp16 writes the
encoder with FP16 weights (the output is still FP32), which is what a GPU benchmark wants; on a
CPU, fp32. --encoder_padding also writes encoder_padded: the same model file, with a config
that declares padded batching (docs/batching.md): input_ids and attention_mask padded with 0 to
--encoder_pad_buckets, so that requests of different lengths share a batch; served beside
encoder, whose requests batch only with requests of their own length, one run compares the two.
--cuda_graphs adds optimization { cuda { graphs: true } } to ResNet-50's config
(fixed shapes); the encoder's shapes vary, so it gets none.
"""
import argparse
import math
import os
import sys

import torch

VOCAB = 30522
MAX_POSITIONS = 512


class SelfAttention(torch.nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.qkv = torch.nn.Linear(hidden, 3 * hidden)
        self.out = torch.nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.size(0), x.size(1), x.size(2)
        qkv = self.qkv(x).view(batch, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # each [batch, heads, length, head_dim]
        scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(self.head_dim))
        scores = scores + additive_mask[:, None, None, :]
        context = torch.matmul(torch.softmax(scores, dim=-1), v)
        return self.out(context.transpose(1, 2).reshape(batch, length, hidden))


class EncoderLayer(torch.nn.Module):
    """BERT's post-norm layer: attention, add and norm, feed-forward (GELU), add and norm."""

    def __init__(self, hidden: int, heads: int, ffn: int):
        super().__init__()
        self.attention = SelfAttention(hidden, heads)
        self.norm1 = torch.nn.LayerNorm(hidden, eps=1e-12)
        self.up = torch.nn.Linear(hidden, ffn)
        self.down = torch.nn.Linear(ffn, hidden)
        self.norm2 = torch.nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x: torch.Tensor, additive_mask: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.attention(x, additive_mask))
        return self.norm2(x + self.down(torch.nn.functional.gelu(self.up(x))))


class Encoder(torch.nn.Module):
    def __init__(self, hidden: int, layers: int, heads: int, ffn: int):
        super().__init__()
        self.word = torch.nn.Embedding(VOCAB, hidden)
        self.position = torch.nn.Embedding(MAX_POSITIONS, hidden)
        self.norm = torch.nn.LayerNorm(hidden, eps=1e-12)
        self.layers = torch.nn.ModuleList(EncoderLayer(hidden, heads, ffn) for _ in range(layers))
        self.pool = torch.nn.Linear(hidden, hidden)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.size(1), device=input_ids.device)
        x = self.norm(self.word(input_ids) + self.position(positions)[None, :, :])
        additive_mask = (1.0 - attention_mask.to(x.dtype)) * -10000.0
        for layer in self.layers:
            x = layer(x, additive_mask)
        return torch.tanh(self.pool(x[:, 0, :])).float()


RESNET_CONFIG = """# Written by bench/make_models.py: torchvision ResNet-50, random weights, traced.
name: "{name}"
platform: "pytorch_libtorch"
max_batch_size: {max_batch_size}
input [ {{ name: "input" data_type: TYPE_FP32 dims: [ 3, 224, 224 ] }} ]
output [ {{ name: "logits" data_type: TYPE_FP32 dims: [ 1000 ] }} ]
{optimization}"""

ENCODER_CONFIG = """# Written by bench/make_models.py: a BERT-style encoder, {layers} layers, hidden {hidden},
# {heads} heads, random weights ({dtype}), scripted. Requests of equal length batch together.
name: "{name}"
platform: "pytorch_libtorch"
max_batch_size: {max_batch_size}
input [
  {{ name: "input_ids" data_type: TYPE_INT64 dims: [ -1 ] }},
  {{ name: "attention_mask" data_type: TYPE_INT64 dims: [ -1 ] }}
]
output [ {{ name: "pooled" data_type: TYPE_FP32 dims: [ {hidden} ] }} ]
"""

# Padded batching (docs/batching.md): both inputs padded with 0 (the mask's 0 hides the padding
# from attention); the output is pooled, fixed-size, so nothing is cut.
ENCODER_PADDING = """parameters {{ key: "coalesce.pad_buckets" value: {{ string_value: "{buckets}" }} }}
parameters {{ key: "coalesce.pad.input_ids" value: {{ string_value: "0" }} }}
parameters {{ key: "coalesce.pad.attention_mask" value: {{ string_value: "0" }} }}
"""


def write_model(repo, name, module, config):
    os.makedirs(os.path.join(repo, name, "1"), exist_ok=True)
    module.save(os.path.join(repo, name, "1", "model.pt"))
    with open(os.path.join(repo, name, "config.pbtxt"), "w") as f:
        f.write(config)


def make_resnet50(args):
    try:
        import torchvision
    except ImportError:
        sys.exit("make_models.py: resnet50 needs torchvision (pip install torchvision, or Debian's "
                 "python3-torchvision); or leave it out with --models encoder")
    torch.manual_seed(7)
    model = torchvision.models.resnet50(weights=None).eval()
    with torch.no_grad():
        module = torch.jit.trace(model, torch.rand(1, 3, 224, 224))
    optimization = "optimization { cuda { graphs: true } }\n" if args.cuda_graphs else ""
    write_model(args.out_repo, "resnet50", module,
                RESNET_CONFIG.format(name="resnet50", max_batch_size=args.max_batch_size,
                                     optimization=optimization))
    print(f"{args.out_repo}/resnet50: ResNet-50 (torchvision {torchvision.__version__}), "
          f"max_batch_size {args.max_batch_size}")


def make_encoder(args):
    torch.manual_seed(7)
    model = Encoder(args.encoder_hidden, args.encoder_layers, args.encoder_heads,
                    4 * args.encoder_hidden).eval()
    if args.encoder_dtype == "fp16":
        model = model.half()
    module = torch.jit.script(model)
    def config(name):
        return ENCODER_CONFIG.format(name=name, layers=args.encoder_layers,
                                     hidden=args.encoder_hidden, heads=args.encoder_heads,
                                     dtype=args.encoder_dtype, max_batch_size=args.max_batch_size)

    write_model(args.out_repo, "encoder", module, config("encoder"))
    if args.encoder_padding:
        padded = config("encoder_padded").replace(
            "Requests of equal length batch together.",
            "Requests of any length batch together,\n# padded to a bucket.")
        write_model(args.out_repo, "encoder_padded", module,
                    padded + ENCODER_PADDING.format(buckets=args.encoder_pad_buckets))
        print(f"{args.out_repo}/encoder_padded: the encoder, padded to {args.encoder_pad_buckets}")
    params = sum(p.numel() for p in model.parameters())
    print(f"{args.out_repo}/encoder: {args.encoder_layers} layers, hidden {args.encoder_hidden}, "
          f"{args.encoder_heads} heads, {params / 1e6:.1f} M parameters ({args.encoder_dtype}), "
          f"max_batch_size {args.max_batch_size}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_repo")
    parser.add_argument("--models", default="resnet50,encoder",
                        help="comma-separated: resnet50, encoder")
    parser.add_argument("--max_batch_size", type=int, default=128)
    parser.add_argument("--encoder_layers", type=int, default=12)
    parser.add_argument("--encoder_hidden", type=int, default=768)
    parser.add_argument("--encoder_heads", type=int, default=12)
    parser.add_argument("--encoder_dtype", choices=("fp32", "fp16"), default="fp32")
    parser.add_argument("--encoder_padding", action="store_true",
                        help="also write encoder_padded, whose config declares padded batching")
    parser.add_argument("--encoder_pad_buckets", default="16,32,64,128,256,512",
                        help="the lengths encoder_padded pads to, ascending, at most 512")
    parser.add_argument("--cuda_graphs", action="store_true",
                        help="optimization { cuda { graphs: true } } in resnet50's config")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in ("resnet50", "encoder")]
    if unknown or not models:
        parser.error(f"--models: expected resnet50 and/or encoder, got {args.models!r}")
    if args.max_batch_size < 1 or args.encoder_layers < 1 or args.encoder_heads < 1:
        parser.error("--max_batch_size, --encoder_layers and --encoder_heads must be >= 1")
    try:
        buckets = [int(b) for b in args.encoder_pad_buckets.split(",")]
    except ValueError:
        buckets = []
    if not buckets or buckets != sorted(set(buckets)) or buckets[0] < 1 or \
            buckets[-1] > MAX_POSITIONS:
        parser.error(f"--encoder_pad_buckets: expected ascending lengths in 1..{MAX_POSITIONS}, "
                     f"got {args.encoder_pad_buckets!r}")
    if args.encoder_hidden % args.encoder_heads:
        parser.error("--encoder_hidden must be a multiple of --encoder_heads")
    for model in models:
        {"resnet50": make_resnet50, "encoder": make_encoder}[model](args)


if __name__ == "__main__":
    main()
