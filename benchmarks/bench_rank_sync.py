"""What a data-parallel rendezvous costs: ``engine.distributed.wait_for_ranks``
(through the launcher's TCP store) against a gloo all-reduce of two floats.

    python -m paddle.distributed.launch --nproc_per_node 2 --log_dir LOG benchmarks/bench_rank_sync.py

prints, in LOG/workerlog.0, the mean time of one call of each over 50 calls.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ppresvar.engine import distributed  # noqa: E402


def main(calls=50):
    distributed.init()
    for name, call in (("wait_for_ranks", lambda: distributed.wait_for_ranks("the benchmark")),
                       ("gloo all-reduce", lambda: distributed.gather_floats(1.0))):
        call()
        start = time.time()
        for _ in range(calls):
            call()
        if distributed.is_main():
            print("%s: %.2f ms a call (%d calls)" % (name, (time.time() - start) / calls * 1000, calls), flush=True)


if __name__ == "__main__":
    main()
