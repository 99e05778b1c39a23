"""Benchmark of the allocator core. Prints its figures; asserts nothing.

    python bench/allocator.py [--quick]

- allocations/s and releases/s on a /8 of /32s with 0, 100k and 1M addresses in use;
- the cost of the last 10k of 1M allocations relative to the first 10k (flat is 1.0);
- lbipam against a plain first-free scan (how MetalLB picks the next IP) at 65k in use;
- memory held by 1M /128 allocations in a /64;
- time to carve every /24 of a /8 (65,536 nodes).
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import tracemalloc
from collections.abc import Callable

from lbipam.core.allocator import Allocator

BATCH = 10_000


def timed(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def fill(pool: Allocator, count: int, prefix: str = "s") -> None:
    for i in range(count):
        pool.allocate(f"{prefix}{i}")


def rates_at(used: int) -> tuple[float, float]:
    """(allocations/s, releases/s) for a batch taken when `used` addresses are held."""
    pool = Allocator(["10.0.0.0/8"], prefixlen=32)
    fill(pool, used)
    alloc_s = timed(lambda: fill(pool, BATCH, "b"))
    held = [net for net, _ in pool.allocations()]
    victims = random.Random(7).sample(held, BATCH)
    release_s = timed(lambda: [pool.release(v) for v in victims])
    return BATCH / alloc_s, BATCH / release_s


def flatness(total: int) -> float:
    """Time of the last BATCH allocations divided by the first BATCH, filling to `total`."""
    pool = Allocator(["10.0.0.0/8"], prefixlen=32)
    first = timed(lambda: fill(pool, BATCH, "a"))
    fill(pool, total - 2 * BATCH, "m")
    last = timed(lambda: fill(pool, BATCH, "z"))
    return last / first


def first_free_scan(first: int, last: int, used: set[int]) -> int:
    """MetalLB's way: walk the range from the start and take the first address not in use."""
    for address in range(first, last + 1):
        if address not in used:
            return address
    raise LookupError("exhausted")


def versus_scan(used_count: int, samples: int = 200) -> tuple[float, float]:
    """(lbipam seconds/op, scan seconds/op) for one next-free allocation with `used_count` held."""
    base = 10 << 24
    used = set(range(base, base + used_count))
    pool = Allocator(["10.0.0.0/8"], prefixlen=32)
    fill(pool, used_count)

    def scan() -> None:
        for _ in range(samples):
            address = first_free_scan(base, base + (1 << 24) - 1, used)
            used.add(address)

    ours = timed(lambda: fill(pool, samples, "x")) / samples
    theirs = timed(scan) / samples
    return ours, theirs


def memory_for_v6(count: int) -> int:
    """Bytes allocated (tracemalloc) to hold `count` /128s in a /64."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    pool = Allocator(["2001:db8::/64"], prefixlen=128)
    owners = [f"svc-{i}" for i in range(count)]  # owner names are the caller's, not counted
    baseline = tracemalloc.get_traced_memory()[0]
    for owner in owners:
        pool.allocate(owner)
    current = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del before
    assert pool.used == count
    return current - baseline


def carve_slash_8() -> tuple[float, int]:
    pool = Allocator(["10.0.0.0/8"], prefixlen=24)
    elapsed = timed(lambda: fill(pool, 65_536, "node-"))
    return elapsed, pool.used


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="100k instead of 1M where 1M is named")
    args = parser.parse_args()
    million = 100_000 if args.quick else 1_000_000

    print("allocator benchmark (one process, CPython)")
    for used in (0, 100_000, million):
        alloc_rate, release_rate = rates_at(used)
        print(
            f"  /8 of /32s, {used:>9,} in use: {alloc_rate:>10,.0f} allocations/s"
            f"  {release_rate:>10,.0f} releases/s"
        )
    print(
        f"  last 10k / first 10k of {million:,} allocations: cost ratio {flatness(million):.2f} (1.00 = flat)"
    )
    ours, theirs = versus_scan(65_536)
    print(
        f"  next-free at 65,536 in use: lbipam {ours * 1e6:.1f} us/op,"
        f" first-free scan {theirs * 1e6:.0f} us/op "
        f"-> scan is {theirs / ours:,.0f}x slower"
    )
    mem = memory_for_v6(million)
    print(f"  memory for {million:,} /128s in a /64: {mem / 2**20:.1f} MiB ({mem / million:.0f} bytes each)")
    elapsed, nodes = carve_slash_8()
    print(f"  carve every /24 of a /8: {nodes:,} nodes in {elapsed:.2f} s ({nodes / elapsed:,.0f}/s)")


if __name__ == "__main__":
    main()
