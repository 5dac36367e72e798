HELP = "pretrain an encoder from scratch with MLM (ALBERT options: factorized embeddings, sharing, SOP) from a YAML recipe"
DESCRIPTION = """Pretrain an encoder from scratch: masked language modelling with dynamic masking, optionally with ALBERT's
factorized embeddings (model.embedding_size), cross-layer sharing (model.sharing) and sentence-order
prediction (sop: true). Override any key with key=value.

  pocketbert pretrain pretrain-tiny model.tokenizer=my_vocab_dir data.train=[corpus.txt]
  pocketbert pretrain my.yaml --resume
  torchrun --nproc_per_node 2 -m pocketbert pretrain my.yaml
"""


def add_arguments(p) -> None:
    from pocketbert.commands import _training

    _training.add_arguments(p)


def run(args):
    from pocketbert.commands import _training
    from pocketbert.pipeline.pretrain import main
    from pocketbert.pipeline.recipe import PretrainRecipe

    return _training.run(args, PretrainRecipe, main)
