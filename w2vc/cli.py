# GENERATED from notebooks/12_after_the_course.ipynb by tools/export.py: do not edit. Edit the notebook, then run `python tools/export.py`.

# %% notebooks/12_after_the_course.ipynb, cell 6
"""The command line of w2vc: ``python -m w2vc COMMAND ...`` (chapter 12)."""
from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path


# %% notebooks/12_after_the_course.ipynb, cell 8
class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line on stderr (and exit code 2), not the usage and a line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {text!r}")
    return value


def _silence_db(text: str) -> float | None:
    if text.lower() == "off":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a level in dBFS (like -60) or 'off', got {text!r}") from None


def _add_progress(command):
    command.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                         help="a progress bar on stderr (default: when stderr is a terminal)")


def _add_training(command, steps: int, lr: float):
    command.add_argument("--train", required=True, metavar="DIR", help="training folder")
    command.add_argument("--valid", required=True, metavar="DIR", help="validation folder")
    command.add_argument("--model", required=True, metavar="FOLDER", help="model folder to start from")
    command.add_argument("--out", required=True, metavar="FOLDER", help="output folder (the best model)")
    command.add_argument("--steps", type=_at_least_one, default=steps, help=f"optimizer steps (default {steps})")
    command.add_argument("--batch-size", type=_at_least_one, default=8, help="files per step (default 8)")
    command.add_argument("--lr", type=_positive_float, default=lr, help=f"peak learning rate (default {lr:g})")
    command.add_argument("--eval-every", type=_at_least_one, default=None, metavar="STEPS",
                         help="validate (and keep the best model) every this many steps (default: steps / 10)")
    command.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    command.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: a GPU when there is one)")
    _add_progress(command)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m w2vc``, one sub-command per task."""
    parser = _Parser(prog="python -m w2vc", description="w2vc: Wav2Vec2-Conformer tools")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    speech = commands.add_parser(
        "transcribe", help="speech to text with a CTC recogniser folder",
        description="Transcribe audio files and folders (wav, flac, ogg; any sampling rate) with a CTC recogniser "
                    "folder (w2vc's or transformers'). Prints 'path<TAB>text' per file; a bad file is reported on "
                    "stderr and skipped; the exit code is 2 when any file failed.")
    speech.add_argument("inputs", nargs="+", metavar="FILE_OR_DIR", help="audio files, or folders of them")
    speech.add_argument("--model", required=True, metavar="FOLDER",
                        help="recogniser folder: config.json, weights, vocab.json, preprocessor_config.json")
    speech.add_argument("--output", metavar="FILE.jsonl", default=None,
                        help="also write one JSON line per file: path, text, seconds, error (and warning)")
    speech.add_argument("--batch-size", type=_at_least_one, default=8, help="files per forward pass (default 8)")
    speech.add_argument("--beam-width", type=_at_least_one, default=1,
                        help="1: greedy decoding (default); more: prefix beam search")
    speech.add_argument("--chunk-length", type=_positive_float, default=20.0, metavar="SECONDS",
                        help="cut longer audio into windows of this length (default 20)")
    speech.add_argument("--stride-length", type=float, default=None, metavar="SECONDS",
                        help="overlap dropped on each side of a window (default: chunk length / 6)")
    speech.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="float32 (default), or bfloat16 where the hardware has it")
    speech.add_argument("--silence-db", type=_silence_db, default=-60.0, metavar="DBFS",
                        help="files quieter than this RMS level get an empty text and a warning (default -60; "
                             "'off' transcribes everything)")
    speech.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: a GPU when there is one)")
    _add_progress(speech)

    ctc = commands.add_parser("finetune-ctc", help="fine-tune a recogniser on folders of audio with transcripts",
                              description="Fine-tune a model folder into a CTC recogniser on folders of audio files, "
                                          "each with a .txt transcript beside it. Keeps the best model by validation "
                                          "CER in --out; run the same command again to resume after an interruption.")
    _add_training(ctc, steps=500, lr=1e-3)
    ctc.add_argument("--vocabulary", choices=("auto", "build", "keep"), default="auto",
                     help="auto: keep a recogniser's vocabulary, else build one from the transcripts (default)")
    classify = commands.add_parser("finetune-classify", help="fine-tune an utterance classifier on class folders",
                                   description="Fine-tune a model folder into an utterance classifier on folders with "
                                               "one sub-folder per class. Keeps the best model by validation accuracy "
                                               "in --out; run the same command again to resume.")
    _add_training(classify, steps=300, lr=5e-4)
    convert = commands.add_parser("convert-fairseq", help="convert a fairseq wav2vec 2.0 Conformer checkpoint",
                                  description="Convert a fairseq wav2vec 2.0 Conformer checkpoint (pretrained or CTC "
                                              "fine-tuned) into a folder that w2vc and transformers load. Nothing in "
                                              "the file is run: only plain data and fairseq's config objects are read.")
    convert.add_argument("checkpoint", metavar="CHECKPOINT.pt")
    convert.add_argument("out", metavar="FOLDER")
    convert.add_argument("--dict", default=None, metavar="dict.ltr.txt",
                         help="for a CTC model: the target dictionary it was fine-tuned with")
    export = commands.add_parser("export-onnx", help="export a model folder to ONNX (dynamic batch and length)",
                                 description="Export a model folder to ONNX with a dynamic batch and length, then "
                                             "check the file with onnxruntime against PyTorch (1e-4).")
    export.add_argument("folder", metavar="FOLDER")
    export.add_argument("out", metavar="MODEL.onnx")
    export.add_argument("--opset", type=_at_least_one, default=18, help="ONNX opset (default 18)")
    export.add_argument("--no-check", action="store_true", help="skip the onnxruntime check")
    commands.add_parser("bench", help="benchmarks (chapter 13); arguments go to w2vc.bench", add_help=False)
    return parser


# %% notebooks/12_after_the_course.ipynb, cell 10
def _one_line(error) -> str:
    """An error message on one line, its advice in the command line's words rather than Python's."""
    text = " ".join(str(error).split())
    for python, command in (("device='cpu'", "--device cpu"), ("dtype='float32'", "--dtype float32"),
                            ("silence_threshold_db=None", "--silence-db off"), ("(--dict FILE)", "(--dict FILE)")):
        text = text.replace(python, command)
    return text


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {_one_line(message)}", file=sys.stderr)


def _bench(rest: list[str]) -> int:
    import importlib
    import importlib.util

    if importlib.util.find_spec("w2vc.bench") is None:
        print("python -m w2vc bench: error: the benchmarks (w2vc.bench, chapter 13) are not in this installation; "
              "install a w2vc that has chapter 13", file=sys.stderr)
        return 2
    code = importlib.import_module("w2vc.bench").main(rest)
    return 0 if code is None else int(code)


def _run_transcribe(args) -> int:
    from w2vc.recognizer import check_device, check_dtype, load_recognizer

    device = check_device(args.device)
    check_dtype(args.dtype, device)
    model, processor = load_recognizer(args.model, device=device)
    sink = open(args.output, "w", encoding="utf-8") if args.output else None
    failed = 0
    try:
        for result in transcribe_files(args.inputs, model, processor, batch_size=args.batch_size,
                                       beam_width=args.beam_width, chunk_length_s=args.chunk_length,
                                       stride_length_s=args.stride_length, dtype=args.dtype,
                                       silence_threshold_db=args.silence_db, progress=args.progress):
            if sink is not None:
                sink.write(json.dumps(result, ensure_ascii=False) + "\n")
                sink.flush()
            if result["error"] is not None:
                failed += 1
                print(f"error: {result['path']}: {_one_line(result['error'])}", file=sys.stderr)
                continue
            if "warning" in result:
                print(f"warning: {result['path']}: {result['warning']}", file=sys.stderr)
            print(f"{result['path']}\t{result['text']}", flush=True)
    finally:
        if sink is not None:
            sink.close()
    return 2 if failed else 0  # each failed file has had its one line on stderr


def _run_training(args, which: str) -> int:
    from w2vc import finetune

    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    kwargs = dict(steps=args.steps, batch_size=args.batch_size, lr=args.lr, eval_every=args.eval_every,
                  seed=args.seed, device=args.device, progress=args.progress, log=log)
    if which == "ctc":
        history = finetune.finetune_ctc(args.train, args.valid, args.model, args.out, vocabulary=args.vocabulary,
                                        **kwargs)
    else:
        history = finetune.finetune_classify(args.train, args.valid, args.model, args.out, **kwargs)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun, process 0 reports
        return 0
    state = json.loads((Path(args.out) / "trainer_state.json").read_text())
    print(f"best {state['metric']} {state['best']:.1%} at step {state['step']} of {state['steps']}; "
          f"model in {args.out} (last loss {history.last('loss'):.3f})")
    return 0


def _after_interrupt(args) -> str:
    """What a command stopped with Ctrl-C leaves behind, and how to go on."""
    if args.command in ("finetune-ctc", "finetune-classify"):
        checkpoint = Path(args.out) / "checkpoint" / "last.pt"
        if checkpoint.is_file():
            return f"; run the same command again to go on from the last evaluation ({checkpoint})"
        return "; no evaluation had finished, so nothing was kept: run the same command again to start over"
    if args.command == "transcribe" and args.output:
        return f"; the files transcribed before it are in {args.output}"
    return ""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0: done; 2: a usage error, or a file or model that failed;
    130: stopped with Ctrl-C).

    Every error a user can cause is one line on stderr that says what was wrong and what to do.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        return _bench(argv[1:])
    args = build_parser().parse_args(argv)
    if getattr(args, "progress", False) is None:
        args.progress = sys.stderr.isatty()
    previous = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        if args.command == "transcribe":
            return _run_transcribe(args)
        if args.command in ("finetune-ctc", "finetune-classify"):
            return _run_training(args, "ctc" if args.command == "finetune-ctc" else "classify")
        if args.command == "convert-fairseq":
            from w2vc.fairseq import convert_fairseq
            folder = convert_fairseq(args.checkpoint, args.out, dictionary=args.dict)
            print(f"converted {args.checkpoint} into {folder}")
            return 0
        if args.command == "export-onnx":
            from w2vc.onnx_export import check_onnx, export_onnx
            path = export_onnx(args.folder, args.out, opset=args.opset)
            if args.no_check:
                print(f"wrote {path}")
            else:
                diff = check_onnx(path, args.folder)
                print(f"wrote {path}; onnxruntime agrees with PyTorch (max |diff| {diff:.1e}) on a padded batch of "
                      f"another length than the export's")
            return 0
    except (OSError, ValueError, TypeError, RuntimeError, ModuleNotFoundError, AssertionError) as error:
        print(f"python -m w2vc {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: not a mistake, but it gets one line too, and the shell's code for it
        print(f"python -m w2vc {args.command}: interrupted{_after_interrupt(args)}", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous
    return 2


# %% notebooks/12_after_the_course.ipynb, cell 32
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")  # the formats load_audio reads (w2vc.audio.AUDIO_SUFFIXES)


def expand_inputs(inputs) -> list[tuple[str, str | None]]:
    """Files and folders -> ``(path, error)`` for each audio file, in order; a folder gives its audio files
    (sorted, sub-folders too). A path that does not exist, or a folder without audio, gives an error instead."""
    out = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            if not found:
                out.append((str(path), f"the folder {str(path)!r} holds no audio files ({', '.join(AUDIO_SUFFIXES)})"))
            out += [(str(p), None) for p in found]
        elif not path.exists():
            out.append((str(path), f"the file {str(path)!r} does not exist"))
        else:
            out.append((str(path), None))
    return out


def transcribe_files(inputs, model, processor=None, *, batch_size: int = 8, beam_width: int = 1,
                     chunk_length_s: float | None = 20.0, stride_length_s: float | None = None, dtype="float32",
                     silence_threshold_db: float | None = -60.0, device=None, progress: bool = False):
    """Transcribe many files, one result per file, never stopping at a bad one.

    Args:
        inputs: audio files and folders (a folder stands for every audio file under it).
        model: a recogniser folder, or a ``Wav2Vec2ConformerForCTC`` with its ``processor``.
        batch_size, beam_width, chunk_length_s, stride_length_s, dtype, device: as for ``transcribe``.
        silence_threshold_db: files quieter than this RMS level (dBFS) get ``text: ""`` and a ``warning``.
        progress: a progress bar on stderr.

    Yields:
        One dict per file, in order: ``{"path", "text", "seconds", "error"}`` and, for silent files, a
        ``"warning"``. ``text`` and ``seconds`` are None when ``error`` says what went wrong.
    """
    from tqdm.auto import tqdm

    from w2vc.audio import check_waveform, load_audio
    from w2vc.recognizer import check_dtype, load_recognizer, rms_db, transcribe

    if isinstance(model, (str, Path)):
        model, processor = load_recognizer(model, device=device)
    check_dtype(dtype, model.device)
    files = expand_inputs(inputs)
    with tqdm(total=len(files), unit="file", desc="transcribe", disable=not progress, file=sys.stderr) as bar:
        for begin in range(0, len(files), batch_size):
            group, results, waves = files[begin:begin + batch_size], [], {}
            for k, (path, error) in enumerate(group):
                result = {"path": path, "text": None, "seconds": None, "error": error}
                if error is None:
                    try:
                        wave = load_audio(path)
                        result["seconds"] = len(wave) / 16000
                        check_waveform(wave, name=f"the audio in {path!r}")
                    except (OSError, ValueError, TypeError, RuntimeError) as problem:
                        result["error"] = str(problem)
                    else:
                        level = rms_db(wave)
                        if silence_threshold_db is not None and level < silence_threshold_db:
                            result["text"] = ""
                            result["warning"] = (f"silent: RMS level {level:.0f} dBFS is below {silence_threshold_db:g} "
                                                 f"dBFS, so nothing was transcribed")
                        else:
                            waves[k] = wave
                results.append(result)
            if waves:
                texts = transcribe([waves[k] for k in sorted(waves)], model, processor, batch_size=batch_size,
                                   beam_width=beam_width, chunk_length_s=chunk_length_s, dtype=dtype,
                                   stride_length_s=stride_length_s, silence_threshold_db=None, progress=False)
                for k, text in zip(sorted(waves), texts):
                    results[k]["text"] = text
            for result in results:
                bar.update(1)
                yield result
