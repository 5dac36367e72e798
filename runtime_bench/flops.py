"""FLOPs and weight bytes per inference from an encoder config (BERT-family keys, as in the manifest).

Counts multiply-adds as 2 FLOPs; LayerNorm, softmax, GELU, embeddings lookups and pooling are left out
(a few percent of the total at these sizes), so this is the GEMM work a CPU has to do.
"""

from __future__ import annotations

from dataclasses import dataclass

BYTES_PER_WEIGHT = {"fp32": 4, "fp16": 2, "int8": 1}


@dataclass(frozen=True)
class Work:
    linear_flops: float  # FLOPs in weight GEMMs (the part int8 quantization speeds up)
    attention_flops: float  # QK^T and softmax(.)V, activation x activation, fp32 in every artifact here
    linear_params: int  # weights read once per inference (embedding tables excluded: only T rows are read)

    @property
    def flops(self) -> float:
        return self.linear_flops + self.attention_flops

    def weight_bytes(self, quant: str) -> int:
        return self.linear_params * BYTES_PER_WEIGHT.get(quant, 4)


def encoder_work(config: dict, seq_len: int) -> Work:
    """GEMM work of one batch-1 inference at `seq_len` tokens.

    Per layer: Q, K, V and output projections 4 * 2*T*H*H, FFN 2 * 2*T*H*I, attention 2 * 2*T*T*H.
    Shared (ALBERT) layers still run once per layer. Heads: mlm adds transform + decoder (2*T*H*(H+V)),
    classification a pooler and classifier (per sequence, not per token).
    """
    h = int(config["hidden_size"])
    n_layers = int(config["num_hidden_layers"])
    inter = int(config["intermediate_size"])
    e = int(config.get("embedding_size") or h)
    t = int(seq_len)
    per_layer_params = 4 * h * h + 2 * h * inter
    linear = n_layers * 2 * t * per_layer_params
    params = per_layer_params * (1 if config.get("sharing", "none") == "all" else n_layers)
    if e != h:  # factorized embedding projection E -> H
        linear += 2 * t * e * h
        params += e * h
    task = config.get("task", "embedding")
    if task == "mlm":
        v = int(config["vocab_size"])
        linear += 2 * t * h * (h + v)
        params += h * h  # the decoder is tied to the embedding table, which is read in full here
        params += h * v
    elif task == "classification":
        linear += 2 * h * h + 2 * h * int(config.get("num_labels") or 2)
        params += h * h + h * int(config.get("num_labels") or 2)
    attention = n_layers * 2 * 2 * t * t * h
    return Work(linear_flops=float(linear), attention_flops=float(attention), linear_params=int(params))
