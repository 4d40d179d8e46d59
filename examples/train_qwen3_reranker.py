"""Option 2 of the README: fine-tune Qwen3-Reranker on your domain data with LoRA in MLX.

    python examples/train_qwen3_reranker.py [--model Qwen/Qwen3-Reranker-0.6B] [--train train.jsonl]
        [--eval dev.jsonl] [--output qwen3-reranker-lora] [--max-length 512]

Writes ``<output>/adapter`` (mlx-lm format): ``Qwen3Reranker(model, adapter_path=...)`` reloads it.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from example_data import EVAL, TRAIN, read_records  # noqa: E402

from mlx_cross_encoder import Qwen3RerankerConfig, Qwen3RerankerTrainer  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="Qwen/Qwen3-Reranker-0.6B")
    parser.add_argument("--train", default=None, help=".jsonl of pairs / triplets / groups (default: a toy set)")
    parser.add_argument("--eval", default=None, help=".jsonl dev records (default: part of the toy set)")
    parser.add_argument("--output", default="qwen3-reranker-lora")
    parser.add_argument("--max-length", type=int, default=512)
    args = parser.parse_args(argv)

    config = Qwen3RerankerConfig(
        model_name=args.model,
        lora_rank=16,
        lora_alpha=32,
        batch_size=4,
        gradient_accumulation_steps=8,
        num_epochs=3,
        learning_rate=2e-5,
        output_dir=args.output,
        max_length=args.max_length,
    )

    trainer = Qwen3RerankerTrainer(config)
    trainer.prepare_model()

    # Your data: [{"query": str, "document": str, "label": 0 or 1}]
    train_data = read_records(args.train, TRAIN)
    eval_data = read_records(args.eval, EVAL)

    result = trainer.train(train_data, eval_data)
    print(f"steps: {result['steps']}  dev: {result['final_metrics']}")
    print(f"adapter: {trainer.save_adapter()}")


if __name__ == "__main__":
    main()
