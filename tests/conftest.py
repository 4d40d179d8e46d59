import os
import sys
from pathlib import Path

# Nothing in the tests may reach the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).parent))

# Before any test module imports mlx.core: installs the hook that loads the optimized BLAS right before MLX binds
# its BLAS (loads no MLX itself), so the import order inside test files does not matter.
import mlx_cross_encoder  # noqa: E402, F401
