"""MolGAN speed: training throughput at batch 256 and the time to evaluate 10,000 molecules.

    python bench/bench_molgan.py                    # both parts, Markdown table on stdout
    python bench/bench_molgan.py --threads 1,2 --iterations 60 --json out.json
    python bench/bench_molgan.py --run runs/q16-s0  # evaluation of a trained run as well
    python bench/bench_molgan.py --stacks 1,4,8 --trained runs/q16-s0/checkpoint.pt --markdown table.md

``--stacks``: critic updates per second summed over runs, side by side in one process: the
single-run ``train`` loop and ``train_stack`` with K stacked runs, in fp32 and bf16, from a
fresh start and (``--trained``) from a copy of a trained checkpoint (its generator is sharp,
so subnormals appear), interleaved over ``--rounds`` rounds (the median is reported) so that
a changing machine load hits every setting alike.  Each timing is the runs' own clock:
whole critic steps with the penalty and the generator's share, no set-up, no checkpoint
writing.

Targets (issue "MolGAN on QM9"): a paper-length run (20,000 iterations = critic updates,
batch 256, generator updated every 5th) in <= 30 minutes on this 2-core machine, and the
evaluation of 10,000 molecules including FCD in <= 60 s with the cached reference.

Training is timed on random dense graphs with the paper's networks (the data does not
change the cost).  Evaluation is timed in parts: latent sampling + generator + argmax
decoding + SMILES for 10,000 latents, the metrics without FCD, and FCD of 10,000 valid
QM9 molecules (the worst case: FCD cost grows with the number of valid molecules) against
the cached test-split reference.  The machine is shared: the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

# this folder is on sys.path when run as a script
from host import describe_host
from result_files import check_new, write_new_text


def bench_training(threads: int, iterations: int, warmup: int, batch_size: int = 256) -> dict:
    import torch

    from qboson.molgan.config import profile_config
    from qboson.molgan import GraphData, train

    rng = np.random.default_rng(0)
    adj = np.triu(rng.integers(0, 4, (4096, 9, 9)), 1)
    data = GraphData(rng.integers(0, 5, (4096, 9)), adj + adj.transpose(0, 2, 1))
    bank = rng.standard_normal((20_000, 16)).astype(np.float32)
    tmp = tempfile.mkdtemp(prefix="qboson-bench-molgan-")
    try:
        cfg = profile_config("paper", latent="gaussian", dim=16, threads=threads, batch_size=batch_size,
                             iterations=warmup + iterations, checkpoint_every=10**9, log_every=10**9)
        # the run's own timer counts only the training steps (no set-up, no checkpoint writing)
        from qboson.molgan import load_checkpoint

        train(cfg, tmp, data=data, latent_bank=bank, progress=False, stop_after=warmup)
        after_warmup = load_checkpoint(tmp)["elapsed_s"]
        t0 = time.perf_counter()
        summary = train(cfg, tmp, data=data, progress=False, resume=True)
        wall = time.perf_counter() - t0
        seconds = summary["train_seconds"] - after_warmup
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    per_it = seconds / iterations
    return {"threads": threads, "batch_size": batch_size, "iterations": iterations, "seconds": seconds,
            "wall_seconds_with_setup": wall,
            "iterations_per_s": 1 / per_it, "ms_per_iteration": 1000 * per_it,
            "projected_20k_minutes": 20_000 * per_it / 60, "torch_threads": torch.get_num_threads()}


def seed_run_dirs(ckpt: dict, configs: list, dirs: list[str], bank: np.ndarray) -> None:
    """Make each ``dirs[j]`` a resumable run folder: ``ckpt`` under ``configs[j]``, with ``bank``."""
    import torch

    for c, d in zip(configs, dirs):
        os.makedirs(d)
        torch.save({**ckpt, "config": c.to_dict()}, os.path.join(d, "checkpoint.pt"))
        np.save(os.path.join(d, "latent_bank.npy"), bank)
        with open(os.path.join(d, "config.json"), "w") as f:
            f.write(c.to_json())


def load_trained(ckpt_path: str) -> tuple[dict, np.ndarray]:
    """A trained run's checkpoint (plain data only) and the latent bank beside it."""
    import torch

    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    bank = np.load(os.path.join(os.path.dirname(ckpt_path), "latent_bank.npy"), allow_pickle=False)
    return ckpt, bank


def train_copies(ckpt: dict, bank: np.ndarray, root: str, loop: str, runs: int, stop_after: int, on_row,
                 data=None, **overrides) -> None:
    """Train ``runs`` copies of a trained run (seeds ``seed, seed + 1, ...``, folders in ``root``) on to
    critic step ``stop_after``: one ``train`` (``loop="train"``, the first copy) or one ``train_stack``.

    ``ckpt`` and ``bank`` as :func:`load_trained` gives them.  Each copy logs a row after every
    critic update; ``on_row(row)`` receives the first run's.  ``overrides`` are config fields
    (threads, precision, ...); ``data`` as for ``train`` (default QM9).
    """
    from qboson.molgan import GraphData, TrainConfig, train
    from qboson.molgan.stacked import train_stack

    base = TrainConfig.from_dict(ckpt["config"]).replace(
        checkpoint_every=10**6, log_every=1, curve_points=0, iteration_unit="critic", iterations=10**7, **overrides)
    configs = [base.replace(seed=base.seed + j) for j in range(runs)]
    dirs = [os.path.join(root, f"run{j}") for j in range(runs)]
    seed_run_dirs(ckpt, configs, dirs, bank)
    data = GraphData.qm9_train(base.data_seed) if data is None else data
    if loop == "train":
        train(configs[0], dirs[0], data=data, resume=True, progress=False, stop_after=stop_after, callback=on_row)
    else:
        train_stack(configs, dirs, data=data, resume=True, progress=False, stop_after=stop_after,
                    callback=lambda k, row: on_row(row) if k == 0 else None)


def _stack_settings(ks: list[int], precisions: list[str], trained: bool) -> list[tuple[str, int, str, bool]]:
    """(loop, K, precision, flush_denormal) of each timed setting."""
    out = [("train", 1, prec, True) for prec in precisions] + [("stack", k, prec, True) for prec in precisions
                                                                for k in ks]
    if trained:
        out.append(("train", 1, "fp32", False))  # what the subnormals cost without flushing
    return out


def bench_stacks(ks: list[int], precisions: list[str], steps: int, warmup: int, rounds: int,
                 trained: str | None, keep: str | None = None) -> dict:
    """Critic updates per second (summed over runs) of ``train`` and ``train_stack`` side by side."""
    import torch

    from qboson.molgan import GraphData, TrainConfig, train
    from qboson.molgan.runfiles import load_checkpoint
    from qboson.molgan.stacked import train_stack

    data = GraphData.qm9_train(0)
    states = {"fresh": None}
    if trained:
        ckpt = torch.load(trained, map_location="cpu", weights_only=True)  # a plain-data checkpoint only
        states["trained"] = ckpt
        base = TrainConfig.from_dict(ckpt["config"])
    else:
        base = TrainConfig(latent="gaussian", dim=16)
    # a schedule that never ends here, so a finished checkpoint can be timed too
    base = base.replace(threads=1, checkpoint_every=10**6, log_every=10**6, curve_points=0, iteration_unit="critic",
                        iterations=10**7)
    rng = np.random.default_rng(0)
    root = keep or tempfile.mkdtemp(prefix="qboson-bench-stack-")
    bank_rows = len(states["trained"]["latent_stream"]["perm"]) if trained else 20_000
    bank = rng.standard_normal((bank_rows, base.dim)).astype(np.float32)
    settings = [(state, *s) for state in states for s in _stack_settings(ks, precisions, state == "trained")]
    timings: dict = {s: [] for s in settings}
    try:
        for r in range(rounds):
            for key in settings:
                state, loop, k, prec, flush = key
                cfg = base.replace(precision=prec, flush_denormal=flush)
                configs = [cfg.replace(seed=cfg.seed + j) for j in range(k)]
                dirs = [os.path.join(root, f"{state}-{loop}-{k}-{prec}-{int(flush)}-{j}") for j in range(k)]
                if r == 0:
                    start = 0
                    if state == "trained":
                        ck = states["trained"]
                        start = int(ck["critic_step"])
                        seed_run_dirs(ck, configs, dirs, bank)
                    timings[key].append(start)  # first entry: the starting step
                    stops = [start + warmup]
                else:
                    stops = []
                stops.append(load_checkpoint(dirs[0])["critic_step"] + steps if r else stops[0] + steps)
                for stop in stops:
                    before = load_checkpoint(dirs[0])["elapsed_s"] if os.path.exists(
                        os.path.join(dirs[0], "checkpoint.pt")) else 0.0
                    if loop == "train":
                        train(cfg, dirs[0], data=data, latent_bank=bank, resume=True, progress=False,
                              stop_after=stop)
                    else:
                        train_stack(configs, dirs, data=data, latent_banks=[bank] * k, resume=True, progress=False,
                                    stop_after=stop)
                    seconds = load_checkpoint(dirs[0])["elapsed_s"] - before
                if seconds <= 0:
                    raise RuntimeError(f"no critic update was timed for {key} (the run did not advance)")
                timings[key].append(seconds / steps)
                print(f"round {r + 1}/{rounds} {state:7s} {loop:5s} K={k} {prec} flush={flush}: "
                      f"{1000 * seconds / steps / k:.1f} ms per critic update per run", file=sys.stderr, flush=True)
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)
    rows = []
    for key, t in timings.items():
        state, loop, k, prec, flush = key
        per_step = float(np.median(t[1:]))
        rows.append({"state": state, "loop": loop, "runs": k, "precision": prec, "flush_denormal": flush,
                     "start_step": t[0], "s_per_stack_step": per_step, "ms_per_update_per_run": 1000 * per_step / k,
                     "updates_per_s": k / per_step, "samples": len(t) - 1})
    for row in rows:
        ref = next(x for x in rows if x["state"] == row["state"] and x["loop"] == "train" and x["precision"] == "fp32"
                   and x["flush_denormal"])
        row["speedup"] = row["updates_per_s"] / ref["updates_per_s"]
    return {"steps": steps, "warmup": warmup, "rounds": rounds, "batch_size": base.batch_size,
            "trained_checkpoint": trained, "rows": rows}


def stacks_table(result: dict) -> str:
    """The Markdown table of :func:`bench_stacks`."""
    lines = ["| start | loop | runs | precision | ms per critic update per run | critic updates/s (sum) | "
             "vs `train` fp32 |", "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        loop = "`train`" if r["loop"] == "train" else "`train_stack`"
        if not r["flush_denormal"]:
            loop += " (no denormal flush)"
        start = r["state"] + (f" (step {r['start_step']})" if r["state"] == "trained" else "")
        lines.append(f"| {start} | {loop} | {r['runs']} | {r['precision']} | {r['ms_per_update_per_run']:.1f} | "
                     f"{r['updates_per_s']:.2f} | {r['speedup']:.2f}x |")
    return "\n".join(lines) + "\n"


def bf16_effect(trained: str, steps: int, n: int = 10_000) -> dict:
    """What bf16 changes, from a trained checkpoint: (a) the same weights' outputs under bf16 autocast
    (argmax-decoded graphs, critic scores) and (b) ``steps`` more critic updates in fp32 vs bf16."""
    import torch

    from qboson.molgan import GraphData, TrainConfig, train
    from qboson.molgan.batches import real_batch
    from qboson.molgan.model import decode_graphs
    from qboson.molgan.runfiles import load_checkpoint
    from qboson.molgan.trainer import build_models, forward_precision

    torch.set_num_threads(1)
    ckpt = torch.load(trained, map_location="cpu", weights_only=True)
    config = TrainConfig.from_dict(ckpt["config"]).replace(threads=1, checkpoint_every=10**6, log_every=10,
                                                           curve_points=0)
    gen, critic = build_models(config, *ckpt["graph_shape"])
    gen.load_state_dict(ckpt["generator"])
    critic.load_state_dict(ckpt["critic"])
    z = torch.from_numpy(np.random.default_rng(1).standard_normal((n, config.dim)).astype(np.float32))
    out: dict = {"checkpoint_step": int(ckpt["critic_step"]), "n": n}
    with torch.no_grad():
        e32, x32 = gen(z)
        with forward_precision("bf16", z.device):
            e16, x16 = gen(z)
        a32, b32 = decode_graphs(e32, x32)
        a16, b16 = decode_graphs(e16.float(), x16.float())
        out["atoms_equal"] = float((a32 == a16).float().mean())
        out["bonds_equal"] = float((b32 == b16).float().mean())
        out["graphs_equal"] = float(((a32 == a16).all(1) & (b32 == b16).flatten(1).all(1)).float().mean())
        out["max_prob_diff"] = float(max((torch.softmax(e32, -1) - torch.softmax(e16.float(), -1)).abs().max(),
                                         (torch.softmax(x32, -1) - torch.softmax(x16.float(), -1)).abs().max()))
        data = GraphData.qm9_train(config.data_seed)
        e, x = real_batch(data, np.arange(2000), 0.0, np.random.default_rng(0))
        s32 = critic(e, x)
        with forward_precision("bf16", z.device):
            s16 = critic(e, x).float()
        out["critic_score_rms_diff"] = float((s32 - s16).pow(2).mean().sqrt())
        out["critic_score_std"] = float(s32.std())
    # (b) the same run continued for `steps` critic updates in each precision
    import tempfile

    root = tempfile.mkdtemp(prefix="qboson-bench-bf16-")
    bank = np.random.default_rng(0).standard_normal((len(ckpt["latent_stream"]["perm"]), config.dim)).astype(
        np.float32)
    rows, gens = {}, {}
    try:
        for prec in ("fp32", "bf16"):
            d = os.path.join(root, prec)
            os.makedirs(d)
            c = config.replace(precision=prec)
            torch.save({**ckpt, "config": c.to_dict()}, os.path.join(d, "checkpoint.pt"))
            np.save(os.path.join(d, "latent_bank.npy"), bank)
            with open(os.path.join(d, "config.json"), "w") as f:
                f.write(c.to_json())
            train(c, d, data=data, latent_bank=bank, resume=True, progress=False,
                  stop_after=int(ckpt["critic_step"]) + steps)
            import csv

            with open(os.path.join(d, "metrics.csv"), newline="") as f:
                rows[prec] = [r for r in csv.DictReader(f) if int(r["critic_step"]) > int(ckpt["critic_step"])]
            gens[prec] = load_checkpoint(d)["generator"]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for prec, rs in rows.items():
        for key in ("wasserstein", "gradient_penalty", "generator_loss"):
            vals = [float(r[key]) for r in rs if r[key] not in ("", "nan")]
            out[f"{prec}_{key}_mean"] = float(np.mean(vals)) if vals else float("nan")
    g32, g16 = build_models(config, *ckpt["graph_shape"])[0], build_models(config, *ckpt["graph_shape"])[0]
    g32.load_state_dict(gens["fp32"])
    g16.load_state_dict(gens["bf16"])
    moved = sum(float((gens["fp32"][k] - ckpt["generator"][k]).pow(2).sum()) for k in gens["fp32"]) ** 0.5
    apart = sum(float((gens["fp32"][k] - gens["bf16"][k]).pow(2).sum()) for k in gens["fp32"]) ** 0.5
    out["steps"] = steps
    out["weights_apart_over_moved"] = apart / moved
    with torch.no_grad():
        a, b = decode_graphs(*g32(z))
        c_, d_ = decode_graphs(*g16(z))
    out["after_steps_graphs_equal"] = float(((a == c_).all(1) & (b == d_).flatten(1).all(1)).float().mean())
    return out


def bench_evaluation(n: int, run: str | None, threads: int) -> dict:
    import torch

    from qboson import chem
    from qboson import latent as latents
    from qboson.molgan.evaluate import evaluate_run, fcd_reference_path, generate_graphs
    from qboson.molgan.model import Generator

    torch.set_num_threads(threads)
    out: dict = {"n": n, "threads": threads}
    data = chem.load_qm9_graphs(seed=0)
    t = time.perf_counter()
    ref = chem.FCDReference.from_smiles(data.split_smiles("test"), cache_path=fcd_reference_path(0), threads=threads)
    out["reference_load_s"] = time.perf_counter() - t  # first call ever: computes and caches it

    t = time.perf_counter()
    z = latents.make("quantum", 16, seed=0).sample(n, seed=1)
    torch.manual_seed(0)
    nodes, adj = generate_graphs(Generator(16).eval(), z)
    smiles = chem.graphs_to_smiles(nodes, adj, strict=False)
    out["generate_decode_s"] = time.perf_counter() - t

    t = time.perf_counter()
    chem.evaluate_molecules(smiles, train_smiles=frozenset(data.split_smiles("train")), fcd_reference=None)
    out["metrics_no_fcd_s"] = time.perf_counter() - t

    valid_qm9 = data.split_smiles("val")[:n]
    t = time.perf_counter()
    out["fcd_value_val_vs_test"] = chem.fcd(valid_qm9, ref, threads=threads)
    out["fcd_of_n_valid_s"] = time.perf_counter() - t
    out["worst_case_total_s"] = out["generate_decode_s"] + out["metrics_no_fcd_s"] + out["fcd_of_n_valid_s"]
    if run:
        t = time.perf_counter()
        r = evaluate_run(run, n_samples=n, threads=threads, write=False)
        out["run"] = {"path": run, "seconds": time.perf_counter() - t, "valid": r["valid"], "n_fcd": r["n_fcd"],
                      "fcd": r["fcd"]}
    return out


def parse_stacks(text: str) -> list[int]:
    """``"8,16"`` -> ``[8, 16]``; a part that is not an integer becomes 0 (refused by :func:`check_stack_sizes`)."""
    return [int(x) if x.strip().isdigit() else 0 for x in text.split(",")]


def check_stack_sizes(ks: list[int]) -> str | None:
    """``None`` if every stack size is a positive integer, else why not."""
    return None if ks and all(k >= 1 for k in ks) else "--stacks takes positive integers, e.g. 8,16"


def check_precisions(precisions: list[str]) -> str | None:
    """``None`` if every precision is one ``TrainConfig`` knows, else why not."""
    from qboson.molgan.config import PRECISIONS

    bad = [x for x in precisions if x not in PRECISIONS]
    return f"--precisions takes {', '.join(PRECISIONS)}; got {', '.join(map(repr, bad))}" if bad else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1,2", help="torch thread counts to time training with (default 1,2)")
    p.add_argument("--iterations", type=int, default=60, help="timed training iterations per setting (default 60)")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--eval-samples", type=int, default=10_000)
    p.add_argument("--eval-threads", type=int, default=1)
    p.add_argument("--run", help="also time `evaluate_run` on this trained run directory")
    p.add_argument("--skip-training", action="store_true")
    p.add_argument("--skip-evaluation", action="store_true")
    p.add_argument("--json", help="write the raw numbers here")
    p.add_argument("--stacks", help="time train vs train_stack with these K, e.g. 1,4,8 (skips the other parts)")
    p.add_argument("--precisions", default="fp32,bf16", help="with --stacks (default fp32,bf16)")
    p.add_argument("--trained", help="with --stacks: also start from a copy of this trained checkpoint.pt")
    p.add_argument("--steps", type=int, default=5, help="with --stacks: timed critic updates per round (default 5)")
    p.add_argument("--rounds", type=int, default=3, help="with --stacks: interleaved rounds (default 3)")
    p.add_argument("--markdown", help="with --stacks: also write the table to this file")
    p.add_argument("--bf16-effect", type=int, metavar="STEPS",
                   help="with --trained: what bf16 changes (same weights, and STEPS more critic updates)")
    args = p.parse_args(argv)
    problems = [check_new(args.json, "--json"), check_new(args.markdown, "--markdown")]
    if args.stacks:
        problems += [check_stack_sizes(parse_stacks(args.stacks)), check_precisions(args.precisions.split(","))]
    for problem in problems:
        if problem:
            p.error(problem)

    result: dict = {"load_average_start": os.getloadavg(), "cpus": os.cpu_count(), "host": describe_host(),
                    "training": []}
    if args.bf16_effect:
        if not args.trained:
            p.error("--bf16-effect needs --trained")
        effect = bf16_effect(args.trained, args.bf16_effect)
        print(json.dumps(effect, indent=2))
        return 0
    if args.stacks:
        import torch

        torch.set_num_threads(1)
        result["stacks"] = bench_stacks(parse_stacks(args.stacks), args.precisions.split(","),
                                        args.steps, args.warmup, args.rounds, args.trained)
        result["load_average_end"] = os.getloadavg()
        table = stacks_table(result["stacks"])
        note = (f"\nbatch {result['stacks']['batch_size']}, 1 torch thread, median of {args.rounds} rounds of "
                f"{args.steps} critic updates; load average {result['load_average_start'][0]:.1f} at start, "
                f"{result['load_average_end'][0]:.1f} at end ({result['cpus']} CPUs)\n")
        print(table + note)
        if args.markdown:
            write_new_text(args.markdown, table + note)
        if args.json:
            write_new_text(args.json, json.dumps(result, indent=2))
        return 0
    if not args.skip_training:
        for threads in (int(x) for x in args.threads.split(",")):
            r = bench_training(threads, args.iterations, args.warmup)
            result["training"].append(r)
            print(f"training, {threads} thread(s): {r['ms_per_iteration']:.1f} ms/iteration", file=sys.stderr)
    if not args.skip_evaluation:
        result["evaluation"] = bench_evaluation(args.eval_samples, args.run, args.eval_threads)
    result["load_average_end"] = os.getloadavg()

    print(f"load average at start {result['load_average_start'][0]:.2f}, at end {result['load_average_end'][0]:.2f} "
          f"({result['cpus']} CPUs)\n")
    if result["training"]:
        print("| training (batch 256, 1 iteration = 1 critic update) | ms/iteration | iterations/s | "
              "20k iterations | target |")
        print("|---|---|---|---|---|")
        for r in result["training"]:
            ok = "met" if r["projected_20k_minutes"] <= 30 else "missed"
            print(f"| {r['threads']} thread(s) | {r['ms_per_iteration']:.1f} | {r['iterations_per_s']:.2f} | "
                  f"{r['projected_20k_minutes']:.1f} min | <= 30 min: {ok} |")
        print()
    ev = result.get("evaluation")
    if ev:
        print(f"| evaluation of {ev['n']} molecules ({ev['threads']} thread) | seconds |")
        print("|---|---|")
        print(f"| latent sampling + generator + decoding to SMILES | {ev['generate_decode_s']:.1f} |")
        print(f"| validity / uniqueness / novelty | {ev['metrics_no_fcd_s']:.1f} |")
        print(f"| FCD of {ev['n']} valid molecules (cached reference) | {ev['fcd_of_n_valid_s']:.1f} |")
        ok = "met" if ev["worst_case_total_s"] <= 60 else "missed"
        print(f"| **total, worst case** (target <= 60 s: {ok}) | {ev['worst_case_total_s']:.1f} |")
        print(f"| (reference statistics: first computation or cache load) | {ev['reference_load_s']:.1f} |")
        if "run" in ev:
            print(f"| `evaluate_run` on {ev['run']['path']} ({ev['run']['valid']} valid) | {ev['run']['seconds']:.1f} |")
    if args.json:
        write_new_text(args.json, json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
