"""The ``algospace`` command: a thin layer over the Python API.

Bad input ends with one line on stderr naming the file/key/row and the
problem, and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import sys

EXIT_BAD_INPUT = 2


class CliError(Exception):
    """A user error to report in one line with exit code 2."""


def _data_synth(args) -> int:
    from envs.data.dataset import synth_market_file

    path = synth_market_file(args.out, preset=args.preset, n_bars=args.bars, seed=args.seed, htf_multiple=args.htf_multiple)
    print(f"wrote {path} ({args.bars} bars, preset {args.preset}, seed {args.seed})")
    return 0


def _data_prepare(args) -> int:
    from envs.data.dataset import prepare_csv_market_file

    path = prepare_csv_market_file(args.csv, args.out, csv_htf=args.csv_htf, timeframe=args.timeframe, htf_multiple=args.htf_multiple)
    print(f"wrote {path} from {args.csv}")
    return 0


def _data_validate(args) -> int:
    from envs.data.store import validate_market_file

    summary = validate_market_file(args.file)
    print(f"ok: {summary['path']}: {summary['base_bars']} base bars, {summary['htf_bars']} higher-timeframe bars, {summary['chunks_checked']} chunks checked")
    return 0


def _data_info(args) -> int:
    from envs.data.info import describe_market_file

    info = describe_market_file(args.file)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(info["text"])
    return 0


def _demo(args) -> int:
    from rllib_algospace.demo import format_metrics, run_random_episode

    metrics = run_random_episode(data=args.data, split=args.split, seed=args.seed, episode_length=args.episode_length, render_every=args.render_every)
    print(f"random team, one episode on {metrics['source']} ({metrics['split']} split, {metrics['steps']} bars):")
    print(format_metrics(metrics))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from envs.data.default import PRESET_NAMES
    from envs.data.synthetic import DEFAULT_PRESET

    parser = argparse.ArgumentParser(prog="algospace", description="Train and evaluate the four-agent AlgoSpace trading team.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = commands.add_parser("data", help="create, import, check and describe market files")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    p = data_commands.add_parser("synth", help="generate a synthetic market file")
    p.add_argument("--out", required=True, help="HDF5 file to write")
    p.add_argument("--preset", default=DEFAULT_PRESET, choices=PRESET_NAMES)
    p.add_argument("--bars", type=int, default=60_000, help="number of 5-minute base bars (default 60000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--htf-multiple", type=int, default=6, help="base bars per higher-timeframe bar (default 6)")
    p.set_defaults(func=_data_synth)

    p = data_commands.add_parser("prepare", help="import a vendor CSV of OHLCV bars")
    p.add_argument("--csv", required=True, help="base-timeframe bars")
    p.add_argument("--csv-htf", default=None, help="optional higher-timeframe bars (else aggregated from base bars)")
    p.add_argument("--out", required=True, help="HDF5 file to write")
    p.add_argument("--timeframe", default=None, help="base bar length, e.g. 5min, 1h, 1d (default: inferred from the data)")
    p.add_argument("--htf-multiple", type=int, default=6, help="base bars per higher-timeframe bar (default 6)")
    p.set_defaults(func=_data_prepare)

    p = data_commands.add_parser("validate", help="check a market file (schema, shapes, checksums, NaNs, time order, splits)")
    p.add_argument("file")
    p.set_defaults(func=_data_validate)

    p = data_commands.add_parser("info", help="describe a market file")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_data_info)

    p = commands.add_parser("demo", help="one episode with random actions on the default data, with its trading metrics")
    p.add_argument("--data", default=None, help="market file (default: the embedded synthetic data)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episode-length", type=int, default=0, help="bars (default 0: the whole split)")
    p.add_argument("--render-every", type=int, default=0, help="print the state every N bars")
    p.set_defaults(func=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from envs.data.errors import DataError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (DataError, CliError) as exc:
        print(f"algospace: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ValueError, FileNotFoundError) as exc:
        print(f"algospace: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
