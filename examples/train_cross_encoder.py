"""Option 3 of the README: fine-tune a traditional cross-encoder in pure MLX, then score a pair.

    python examples/train_cross_encoder.py [--model cross-encoder/ms-marco-MiniLM-L-6-v2] [--train train.jsonl]
        [--eval dev.jsonl] [--output mlx-cross-encoder-output]

Writes ``<output>/adapter`` (reload with ``MLXCrossEncoder(model, adapter_path=...)``) and, with ``--export``,
a Hugging Face directory that sentence-transformers' ``CrossEncoder`` loads.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from example_data import EVAL, TRAIN, read_records  # noqa: E402

from mlx_cross_encoder import MLXCrossEncoder, MLXCrossEncoderConfig, MLXCrossEncoderTrainer  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="cross-encoder/ms-marco-MiniLM-L-6-v2")
    parser.add_argument("--train", default=None, help=".jsonl of pairs / triplets / groups (default: a toy set)")
    parser.add_argument("--eval", default=None, help=".jsonl dev records (default: part of the toy set)")
    parser.add_argument("--output", default="mlx-cross-encoder-output")
    parser.add_argument("--export", default=None, help="also write a Hugging Face directory here")
    args = parser.parse_args(argv)
    train_data = read_records(args.train, TRAIN)
    eval_data = read_records(args.eval, EVAL)

    # Load HuggingFace weights directly into MLX
    model = MLXCrossEncoder.from_pretrained(args.model)
    config = MLXCrossEncoderConfig(pretrained_path=args.model, output_dir=args.output)
    trainer = MLXCrossEncoderTrainer(model, config)

    # Train
    trainer.train(train_data, eval_data)

    # Score
    score = trainer.score_pair("auth flow", "OAuth2 token exchange")
    print(f"score: {score:.6f}")

    print(f"adapter: {trainer.save_adapter()}")
    if args.export:
        print(f"export: {trainer.export_hf(args.export)}")


if __name__ == "__main__":
    main()
