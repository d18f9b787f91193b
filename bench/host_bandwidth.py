"""Host memory and PCIe bandwidth of the GPU machine, for reading the engine table.

  python3 bench/host_bandwidth.py

Prints, with PyTorch: host memcpy rate (bytes copied per second) with 1, 4, 8 and 16 threads,
on 256 MiB buffers (out of cache); page-locked host->device and device->host copy rates of 8
MiB (a batch of 256 demo rows) on one stream; and both directions at once on two streams.
"""
import time

import torch


def rate(fn, nbytes, iterations, sync=lambda: None):
    fn()
    sync()
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    sync()
    return nbytes * iterations / (time.perf_counter() - start) / 1e9


def main():
    big = 256 << 20
    a = torch.empty(big, dtype=torch.uint8).fill_(1)
    b = torch.empty_like(a)
    for threads in (1, 4, 8, 16):
        torch.set_num_threads(threads)
        print(f"host memcpy, {threads:2d} threads: {rate(lambda: b.copy_(a), big, 10):6.1f} GB/s")
    if not torch.cuda.is_available():
        return
    batch = 8 << 20
    host_in = torch.empty(batch, dtype=torch.uint8).pin_memory()
    host_out = torch.empty(batch, dtype=torch.uint8).pin_memory()
    dev_in = torch.empty(batch, dtype=torch.uint8, device="cuda")
    dev_out = torch.empty(batch, dtype=torch.uint8, device="cuda")
    sync = torch.cuda.synchronize
    h2d = rate(lambda: dev_in.copy_(host_in, non_blocking=True), batch, 200, sync)
    d2h = rate(lambda: host_out.copy_(dev_out, non_blocking=True), batch, 200, sync)
    print(f"pinned host->device, 8 MiB: {h2d:6.1f} GB/s ({batch / h2d / 1e6:.3f} ms)")
    print(f"pinned device->host, 8 MiB: {d2h:6.1f} GB/s ({batch / d2h / 1e6:.3f} ms)")
    s1, s2 = torch.cuda.Stream(), torch.cuda.Stream()

    def both():
        with torch.cuda.stream(s1):
            dev_in.copy_(host_in, non_blocking=True)
        with torch.cuda.stream(s2):
            host_out.copy_(dev_out, non_blocking=True)

    duplex = rate(both, 2 * batch, 200, sync)
    print(f"both directions at once, 2 x 8 MiB: {duplex:6.1f} GB/s in total")


if __name__ == "__main__":
    main()
