"""The traced module every exporter sees: int32 (1, N) inputs -> the task's one output tensor."""

from __future__ import annotations

import torch
from torch import nn

from pocketbert.pipeline.models.encoder import Encoder

INPUT_NAMES = ("input_ids", "attention_mask")
# The shortest input a dynamic-length artifact takes: [CLS] [SEP], the tokens of an empty text (torch.export
# also specialises sizes 0 and 1). The manifest records it as the artifact's `min_seq_len`.
MIN_SEQ_LEN = 2


def dynamic_shapes(max_len: int) -> dict:
    """torch.export's dynamic_shapes for (input_ids, attention_mask): one length in [MIN_SEQ_LEN, max_len]."""
    seq = torch.export.Dim("seq_len", min=MIN_SEQ_LEN, max=max_len)
    return {name: {1: seq} for name in INPUT_NAMES}


def output_name(task: str) -> str:
    return "embedding" if task == "embedding" else "logits"


class TaskModule(nn.Module):
    """forward(input_ids int32 (1, N), attention_mask int32 (1, N)) -> `encoder.task_forward(...)`.

    Inputs are int32 for every format (Core ML and TFLite have no int64 inputs on device); the
    embedding gather gets int64 inside the graph where PyTorch wants it.
    """

    def __init__(self, encoder: Encoder):
        super().__init__()
        self.encoder = encoder.eval()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder.task_forward(input_ids.to(torch.int64), attention_mask)
