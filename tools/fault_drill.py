"""Fault drill: kill training runs at random moments, resume them, and check they end where an unbroken run ends.

    python tools/fault_drill.py [--kills 10] [--steps 30] [--seed 0] [--work DIR]

Trains a tiny synthetic run once without interruption (the reference), then, for each of SIGKILL, SIGINT and SIGTERM,
starts the same run in a fresh folder and sends it that signal `--kills` times at random moments (start-up, a step,
a checkpoint write: `train.checkpoint_every` is 1, so most moments fall in or next to one), restarting it with the
same command after each. When the run has finished, every step's logged loss (the last one logged for the step,
since a resumed run repeats the steps after its last checkpoint) must equal the reference's to 1e-4, and no step may
be missing. Prints one line per kill and a summary table; exits 1 if any run differs (docs/reliability.md).
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = [
    "model.preset=small", "model.num_landmarks=4", "data.image_size=32",
    "data.options={train_videos: 2, test_videos: 1, frames_per_video: 8}", "data.temporal_offset=[1, 3]",
    "loss.layer_weights=[0, 0, 0, 0]", "train.precision=float32", "train.batch_size=2", "train.log_every=1",
    "train.checkpoint_every=1", "train.image_every=100000", "model.zero_heads=false",
    "train.background_warmup_steps=0",
]


def command(output: Path, steps: int) -> list[str]:
    overrides = [item for setting in SETTINGS for item in ("--set", setting)]
    return [sys.executable, "-m", "fgbg_tf.train", "--no-progress", "--output", str(output), "--max-steps", str(steps),
            *overrides]


def logged_losses(run: Path) -> dict[int, float]:
    """step -> the last loss/loss logged for it, over every TensorBoard file of the run (in the order written)."""
    import tensorflow as tf

    losses = {}
    for path in sorted((run / "logs").glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag == "loss/loss":
                    losses[event.step] = float(tf.make_ndarray(value.tensor))
    return losses


def newest_checkpoint(output: Path) -> int:
    folder = output / "checkpoints"
    steps = [int(p.name.split(".")[0].split("-")[1]) for p in folder.glob("ckpt-*.index")] if folder.is_dir() else []
    return max(steps, default=0)


def timed_run(output: Path, steps: int) -> tuple[float, float]:
    """Runs to the end without interruption; returns (start-up seconds, seconds per step), timed by its checkpoints."""
    process = subprocess.Popen(command(output, steps), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started, first = time.monotonic(), None
    while process.poll() is None:
        if first is None and newest_checkpoint(output) >= 1:
            first = time.monotonic() - started
        time.sleep(0.1)
    if process.returncode != 0:
        raise RuntimeError(f"the run in {output} failed (exit {process.returncode})")
    total = time.monotonic() - started
    per_step = (total - first) / max(steps - 1, 1)
    return first - per_step, per_step


def _as_in_a_terminal() -> None:
    # A shell starts background jobs (this drill under nohup ... &) with SIGINT ignored, and children inherit it: a
    # SIGINT before the command installs its own handler would be lost. Ctrl-C reaches a terminal's job with the
    # default action, so the drilled run gets that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def drill(kind: signal.Signals, kills: int, output: Path, steps: int, startup: float, per_step: float,
          rng: random.Random) -> list[str]:
    """Kills the run `kills` times with `kind` at random moments, restarting it after each, then lets it finish.

    A quarter of the kills fall in the start-up (imports, model build, restore, tracing); the others a random
    fraction of a step after a random later checkpoint has appeared, so while it trains or writes the next one. That
    checkpoint is drawn from the next share of the remaining steps (remaining / kills left), so the kills spread over
    the whole run instead of reaching its end after a few.
    """
    lines, starts = [], 0
    while len(lines) < kills and starts < 4 * kills:
        starts += 1
        done = newest_checkpoint(output)
        process = subprocess.Popen(command(output, steps), cwd=ROOT, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True, preexec_fn=_as_in_a_terminal)
        if steps - done < 2 or rng.random() < 0.25:
            moment = f"in the start-up from checkpoint {done}"
            time.sleep(rng.uniform(0.2, 0.9) * startup)
        else:
            target = done + rng.randint(1, max(1, (steps - done - 1) // (kills - len(lines))))
            pause = rng.uniform(0.0, per_step)
            moment = f"{pause:.2f} s after checkpoint {target} appeared"
            while process.poll() is None and newest_checkpoint(output) < target:
                time.sleep(0.05)
            time.sleep(pause)
        if process.poll() is not None:
            if newest_checkpoint(output) >= steps:
                break  # it finished first: the kills so far are what the summary counts
            continue  # failed before the signal: the comparison of the losses will show it
        process.send_signal(kind)
        _, err = process.communicate(timeout=600)
        last = next((line for line in reversed(err.strip().splitlines()) if line.startswith("error:")), "")
        lines.append(f"{kind.name} {len(lines) + 1}/{kills} {moment}: exit {process.returncode}"
                     f"{', ' + last if last else ''}; newest checkpoint now {newest_checkpoint(output)}")
        print(lines[-1], flush=True)
    subprocess.run(command(output, steps), cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=10, help="kills per signal (default 10)")
    parser.add_argument("--steps", type=int, default=30, help="training steps of the drilled run (default 30)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    parser.add_argument("--work", help="folder for the runs (default: a temporary folder)")
    args = parser.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="fgbg_tf-drill-"))
    rng = random.Random(args.seed)
    startup, per_step = timed_run(work / "reference", args.steps)
    reference = logged_losses(work / "reference")
    print(f"reference: start-up {startup:.1f} s, {per_step:.2f} s per step (with its checkpoint), folder {work}",
          flush=True)
    failed = False
    summary = []
    for kind in (signal.SIGKILL, signal.SIGINT, signal.SIGTERM):
        output = work / kind.name.lower()
        kills = len(drill(kind, args.kills, output, args.steps, startup, per_step, rng))
        losses = logged_losses(output)
        missing = sorted(set(reference) - set(losses))
        worst = max((abs(losses[s] - reference[s]) / abs(reference[s]) for s in reference if s in losses), default=0)
        ok = not missing and worst <= 1e-4 and kills == args.kills
        failed |= not ok
        summary.append(f"| {kind.name} | {kills} | {len(losses)} / {len(reference)} | {worst:.1e} | "
                       f"{'equal' if ok else 'DIFFERENT'} |")
    print("| signal | kills | steps logged / reference | largest relative loss difference | result |")
    print("|---|---|---|---|---|")
    print("\n".join(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
