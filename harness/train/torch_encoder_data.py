"""The MLX trainer's micro-batches fed to sentence-transformers' ``CrossEncoderTrainer``
(:mod:`.torch_encoder`): every epoch's batches in the MLX order, with its negatives, as a ``datasets.Dataset`` in
the column layout the loss expects, the batch sampler that replays them (:class:`MLXBatches`) and the weights that
make the Trainer's gradient accumulation example-weighted as the MLX trainer's is."""

from __future__ import annotations

import collections
import math

from mlx_cross_encoder.training.settings import TrainingSettings

from .torch_common import training_data


class MLXBatches:
    """A batch sampler that yields the MLX trainer's micro-batches (row indices) of the current epoch
    (``set_epoch``, which the Trainer calls through accelerate), and the weight of each micro-batch's mean loss
    that makes the Trainer's accumulation example-weighted as the MLX trainer's is (:meth:`next_weight`)."""

    def __init__(self, per_epoch: list[list[list[int]]], accum: int):
        self.per_epoch, self.epoch = per_epoch, 0
        self.weights: collections.deque[float] = collections.deque()
        self.epoch_weights = [self._weights(batches, accum) for batches in per_epoch]

    @staticmethod
    def _weights(batches: list[list[int]], accum: int) -> list[float]:
        """The Trainer divides each micro-batch's mean loss by the number ``k`` of micro-batches in its update
        (groups of ``accum`` in the epoch, the last one shorter); ``n * k / N`` turns that into ``n / N``."""
        out = []
        for start in range(0, len(batches), accum):
            group = [len(b) for b in batches[start : start + accum]]
            out += [n * len(group) / sum(group) for n in group]
        return out

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        for batch, weight in zip(self.per_epoch[self.epoch], self.epoch_weights[self.epoch]):
            self.weights.append(weight)
            yield batch

    def __len__(self) -> int:
        return len(self.per_epoch[0])

    def next_weight(self) -> float:
        return self.weights.popleft()


def epochs_needed(settings: TrainingSettings, micro_per_epoch: int) -> int:
    if not settings.max_steps:
        return settings.num_epochs
    return math.ceil(settings.max_steps * settings.gradient_accumulation_steps / micro_per_epoch)


def encoder_dataset(groups, settings: TrainingSettings):
    """The MLX trainer's micro-batches of every epoch, in order, as a ``datasets.Dataset`` in the column layout the
    chosen loss expects (one row per pair, or per query group), with the rows of each micro-batch
    (:class:`MLXBatches`), the pairs it will score and the micro-batches per epoch."""
    from datasets import Dataset

    data = training_data()
    b = data.Batcher(groups, settings.loss, settings.batch_size, settings.group_size, settings.seed)
    pointwise = settings.loss in data.POINTWISE_LOSSES
    k = 1 if pointwise else settings.group_size
    cols = ["query", "document"] if pointwise else ["query", *(f"doc_{i}" for i in range(k))]
    rows: dict[str, list] = {c: [] for c in [*cols, "label"]}
    pairs, per_epoch = [], []
    for epoch in range(epochs_needed(settings, len(b))):  # the order and negatives of each MLX epoch
        per_epoch.append([])
        for batch in b.batches(epoch):
            first = len(rows["query"])
            for g in range(batch.n_examples):
                members = batch.pairs[g * k : (g + 1) * k]
                pairs += members
                rows["query"].append(members[0][0])
                for col, (_, doc) in zip(cols[1:], members):
                    rows[col].append(doc)
                rows["label"].append(row_label(settings.loss, batch, g, k))
            per_epoch[-1].append(list(range(first, len(rows["query"]))))
    if settings.loss == "margin_mse":  # MarginMSELoss's columns: query, positive, negative_1..k-1
        rows = {
            "query": rows["query"],
            "positive": rows["doc_0"],
            **{f"negative_{i}": rows[f"doc_{i}"] for i in range(1, k)},
            "label": rows["label"],
        }
    return Dataset.from_dict(rows), MLXBatches(per_epoch, settings.gradient_accumulation_steps), pairs, len(b)


def row_label(loss: str, batch, g: int, k: int):
    if loss == "bce":
        return float(batch.labels[g])
    if loss == "mse":
        return float(batch.teacher[g])
    if loss == "margin_mse":
        t = batch.teacher[g * k : (g + 1) * k]
        return [float(t[0] - t[j]) for j in range(1, k)]
    if loss == "listwise_kl":
        return [float(v) for v in batch.teacher[g * k : (g + 1) * k]]
    return 0.0  # listwise: the positive is the first document
