HELP = "distil one or more teachers into a student from a YAML recipe (triple, embedding, task or ensemble)"
DESCRIPTION = """Distil a teacher into a smaller student. The recipe (YAML, see pipeline/recipes/) chooses the
objective: `triple` (DistilBERT: soft MLM targets + MLM + hidden cosine), `embedding` (sentence-embedding
teachers such as all-MiniLM-L6-v2), `task` (a fine-tuned classifier) or `ensemble` (several weighted
sentence-embedding teachers, width-agnostic, teacher embeddings cached on disk). Override any key with key=value.

  pocketbert distill distill-minilm-sts train.max_minutes=25 student.layers=0,2,5
  pocketbert distill distill-ensemble-sts            # all-MiniLM-L6-v2 + paraphrase-MiniLM-L3-v2 -> L3 layers 0,2
  pocketbert distill my.yaml --resume                # continue an interrupted run exactly
  torchrun --nproc_per_node 2 -m pocketbert distill my.yaml   # DDP: gloo on CPU, nccl on GPU
"""


def add_arguments(p) -> None:
    from pocketbert.commands import _training

    _training.add_arguments(p)


def run(args):
    from pocketbert.commands import _training
    from pocketbert.pipeline.distill import main
    from pocketbert.pipeline.recipe import DistillRecipe

    return _training.run(args, DistillRecipe, main)
