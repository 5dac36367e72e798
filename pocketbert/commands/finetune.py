HELP = "fine-tune a classification teacher (for task distillation) from a YAML recipe"
DESCRIPTION = """Fine-tune an encoder checkpoint into a sequence classifier (BERT pooler + linear head), the teacher
that `pocketbert distill` with objective=task compresses. Override any key with key=value.

  pocketbert finetune finetune-minilm-sst2 train.max_minutes=10
  pocketbert finetune my.yaml --resume
"""


def add_arguments(p) -> None:
    from pocketbert.commands import _training

    _training.add_arguments(p)


def run(args):
    from pocketbert.commands import _training
    from pocketbert.pipeline.finetune import main
    from pocketbert.pipeline.recipe import FinetuneRecipe

    return _training.run(args, FinetuneRecipe, main)
