"""Quick Start, Option 3 of the seed README, as written: a traditional cross-encoder in pure MLX.

    python examples/quickstart_option3.py [MODEL]

MODEL defaults to "cross-encoder/ms-marco-MiniLM-L-6-v2" (Hub id); pass a local folder offline.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from example_data import EVAL, TRAIN  # noqa: E402

from mlx_cross_encoder import MLXCrossEncoder, MLXCrossEncoderConfig, MLXCrossEncoderTrainer  # noqa: E402

MODEL = sys.argv[1] if len(sys.argv) > 1 else "cross-encoder/ms-marco-MiniLM-L-6-v2"
train_data, eval_data = TRAIN, EVAL

# Load HuggingFace weights directly into MLX
model = MLXCrossEncoder.from_pretrained(MODEL)
config = MLXCrossEncoderConfig(pretrained_path=MODEL)
trainer = MLXCrossEncoderTrainer(model, config)

# Train
trainer.train(train_data, eval_data)

# Score
score = trainer.score_pair("auth flow", "OAuth2 token exchange")
print(f"score={score:.6f}")
