"""Quick Start, Option 2 of the seed README, as written: fine-tune Qwen3-Reranker with LoRA on your data.

    python examples/quickstart_option2.py [MODEL]

MODEL defaults to "Qwen/Qwen3-Reranker-0.6B"; the data are the toy records of examples/example_data.py. The
adapter goes to ./reranker-output/adapter (the config's default output_dir).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from example_data import EVAL, TRAIN  # noqa: E402

from mlx_cross_encoder import Qwen3RerankerConfig, Qwen3RerankerTrainer  # noqa: E402

MODEL = sys.argv[1] if len(sys.argv) > 1 else "Qwen/Qwen3-Reranker-0.6B"

config = Qwen3RerankerConfig(
    model_name=MODEL,
    lora_rank=16,
    batch_size=4,
    gradient_accumulation_steps=8,
    num_epochs=3,
    learning_rate=2e-5,
)

trainer = Qwen3RerankerTrainer(config)
trainer.prepare_model()

# Your data: [{"query": str, "document": str, "label": 0 or 1}]
train_data = TRAIN
eval_data = EVAL

trainer.train(train_data, eval_data)
print(trainer.save_adapter())
