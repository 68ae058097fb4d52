"""Where a CPU training step's time goes: paddle's profiler over a few
one-process training steps of one model (batch 128, 32x32, ppresvar's
kernels as the trainer runs them), the operators sorted by CPU time.

    python benchmarks/profile_step.py resnet56 [--threads 2] [--steps 4]

Run it on a quiet machine. benchmarks/benchmark.py gives throughput; this
gives the split behind it (the notes of issue 17 quote it).
"""
import argparse

from ppresvar import runtime


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=None, help="default: every core")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch", type=int, default=128)
    a = p.parse_args()
    runtime.apply_cpu_settings()
    import paddle
    import paddle.nn.functional as F
    import paddle.profiler as profiler

    import ppresvar
    from ppresvar import kernels

    runtime.set_cpu_threads(a.threads)
    model = ppresvar.create_model(a.model, num_classes=10)
    model.train()
    opt = paddle.optimizer.Momentum(0.1, momentum=0.9, parameters=model.parameters(), weight_decay=5e-4)
    x, y = paddle.randn([a.batch, 3, 32, 32]), paddle.randint(0, 10, [a.batch])

    def step():
        with kernels.use(kernels.available()[0]):
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.clear_grad()

    for _ in range(3):
        step()
    prof = profiler.Profiler(targets=[profiler.ProfilerTarget.CPU])
    prof.start()
    for _ in range(a.steps):
        step()
    prof.stop()
    prof.summary(op_detail=False, thread_sep=False, time_unit="ms", sorted_by=profiler.SortedKeys.CPUTotal)


if __name__ == "__main__":
    main()
