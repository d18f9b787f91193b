"""The demo model of coalesce, in PyTorch, with weights identical bit for bit to the C++ one.

    y = relu(x @ w1 + b1) @ w2 + b2      x: [batch, 32, 256] -> y: [batch, 32, 256]

w1 [256, 512], b1 [512], w2 [512, 256], b2 [256], float32, drawn from one splitmix64 stream
(seed 42) in the order w1 (row-major), b1, w2, b2. Each draw is

    u = (next() >> 40) * 2^-24 * 2 - 1      # a 24-bit integer times a power of two: exact
    w1, b1: u / 16        w2, b2: u / 32     # powers of two again: exact in float32

so every weight is an exact float32 and any implementation that follows the recipe gets the
same bits. Outputs agree only to rounding, because matmul summation order differs between
libraries and batch sizes.

Needs only torch (no numpy), so it runs wherever the benchmark's peers run.

    python3 bench/peers/demo_model.py     # prints the first outputs for an all-ones input
"""

import torch

MODEL_NAME = "demo"
MODEL_VERSION = "1"
INPUT_NAME = "INPUT0"
OUTPUT_NAME = "OUTPUT0"
SAMPLE_SHAPE = (32, 256)  # one sample; requests are [batch, 32, 256]
HIDDEN = 512
SEED = 42

_MASK64 = (1 << 64) - 1


def splitmix64_uniform(count, seed=SEED):
    """The first `count` draws of splitmix64(seed) as exact floats in [-1, 1)."""
    state = seed & _MASK64
    values = [0.0] * count
    for i in range(count):
        state = (state + 0x9E3779B97F4A7C15) & _MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        z ^= z >> 31
        values[i] = (z >> 40) * (2.0 ** -24) * 2.0 - 1.0
    return values


def demo_weights(seed=SEED):
    """(w1, b1, w2, b2) as float32 CPU tensors, drawn in that order from one stream."""
    features = SAMPLE_SHAPE[1]
    sizes = [features * HIDDEN, HIDDEN, HIDDEN * features, features]
    stream = splitmix64_uniform(sum(sizes), seed)
    tensors = []
    offset = 0
    for size in sizes:
        tensors.append(torch.tensor(stream[offset:offset + size], dtype=torch.float32))
        offset += size
    w1, b1, w2, b2 = tensors
    return (w1.reshape(features, HIDDEN) / 16, b1 / 16,
            w2.reshape(HIDDEN, features) / 32, b2 / 32)


class DemoModel(torch.nn.Module):
    """relu(x @ w1 + b1) @ w2 + b2, the weights held as buffers (nothing to train)."""

    def __init__(self, seed=SEED):
        super().__init__()
        w1, b1, w2, b2 = demo_weights(seed)
        self.register_buffer("w1", w1)
        self.register_buffer("b1", b1)
        self.register_buffer("w2", w2)
        self.register_buffer("b2", b2)

    def forward(self, x):
        return torch.relu(x @ self.w1 + self.b1) @ self.w2 + self.b2


def resolve_device(name="auto"):
    """'auto' picks CUDA, then MPS, then CPU; anything else is passed to torch.device."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(name)


def default_dtype(device):
    """coalesce's --precision=auto: fp16 on an accelerator, fp32 on CPU."""
    return torch.float32 if device.type == "cpu" else torch.float16


def build_demo_model(device="auto", dtype=None, seed=SEED):
    """The demo model in eval mode on `device` (a name or torch.device) in `dtype`.

    dtype None means default_dtype(device). Returns (model, device, dtype); the model expects
    its input already on `device` in `dtype`.
    """
    device = resolve_device(device) if isinstance(device, str) else device
    dtype = default_dtype(device) if dtype is None else dtype
    model = DemoModel(seed).to(device=device, dtype=dtype).eval()
    return model, device, dtype


def main():
    model, device, dtype = build_demo_model("cpu", torch.float32)
    with torch.inference_mode():
        y = model(torch.ones((1,) + SAMPLE_SHAPE, dtype=torch.float32))
        y64 = DemoModel().double()(torch.ones((1,) + SAMPLE_SHAPE, dtype=torch.float64))
    w1, b1, w2, b2 = demo_weights()
    print("w1[0,:4] =", [float(v) for v in w1[0, :4]])
    print("b2[:4]   =", [float(v) for v in b2[:4]])
    print("all-ones [1,32,256] -> OUTPUT0[0,0,:4] fp32 =", [float(v) for v in y[0, 0, :4]])
    print("all-ones [1,32,256] -> OUTPUT0[0,0,:4] fp64 =", [float(v) for v in y64[0, 0, :4]])


if __name__ == "__main__":
    main()
