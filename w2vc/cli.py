# GENERATED from notebooks/09_ctc.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/09_ctc.ipynb, cell 107
"""The command line of w2vc: ``python -m w2vc transcribe FILE... --model FOLDER`` (chapter 9)."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 a usage or input error)."""
    parser = argparse.ArgumentParser(prog="python -m w2vc", description="w2vc: Wav2Vec2-Conformer tools")
    commands = parser.add_subparsers(dest="command", required=True)
    speech = commands.add_parser("transcribe", help="speech to text with a CTC checkpoint folder",
                                 description="Transcribe audio files (wav, flac, ogg; any sampling rate) with a "
                                             "CTC recogniser folder (w2vc's or transformers').")
    speech.add_argument("files", nargs="+", metavar="FILE", help="audio files")
    speech.add_argument("--model", required=True, metavar="FOLDER",
                        help="checkpoint folder: config.json, weights, vocab.json, preprocessor_config.json")
    speech.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default 8)")
    speech.add_argument("--chunk-length", type=float, default=20.0, metavar="SECONDS",
                        help="cut longer audio into windows of this length (default 20)")
    speech.add_argument("--stride-length", type=float, default=None, metavar="SECONDS",
                        help="overlap dropped on each side of a window (default chunk length / 6)")
    speech.add_argument("--beam-width", type=int, default=1, help="1: greedy decoding; more: prefix beam search")
    speech.add_argument("--device", default=None, help="cpu, cuda, ... (default: a GPU when there is one)")
    speech.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    from w2vc.ctc import transcribe  # imported here so that `--help` is fast

    try:
        texts = transcribe(args.files, model=args.model, chunk_length_s=args.chunk_length,
                           stride_length_s=args.stride_length, batch_size=args.batch_size,
                           beam_width=args.beam_width, device=args.device,
                           progress=False if args.no_progress else None)
    except (FileNotFoundError, ValueError, TypeError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path, text in zip(args.files, texts):
        print(f"{path}\t{text}")
    return 0
