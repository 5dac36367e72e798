HELP = "distil a teacher into a student from a YAML recipe (triple, embedding or task objective)"
DESCRIPTION = """Distil a teacher into a smaller student. The recipe (YAML, see pipeline/recipes/) chooses the
objective: `triple` (DistilBERT: soft MLM targets + MLM + hidden cosine), `embedding` (sentence-embedding
teachers such as all-MiniLM-L6-v2) or `task` (a fine-tuned classifier). Override any key with key=value.

  pocketbert distill distill-minilm-sts train.max_minutes=25 student.layers=0,2,5
  pocketbert distill my.yaml --resume                # continue an interrupted run exactly
  torchrun --nproc_per_node 2 -m pocketbert distill my.yaml   # DDP: gloo on CPU, nccl on GPU
"""


def add_arguments(p) -> None:
    p.add_argument("recipe", help="recipe YAML file, or the name of a shipped recipe (pipeline/recipes/*.yaml)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. train.max_steps=100")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="WORK_DIR",
                   help="continue from the saved training state (default folder: <out>.work)")


def run(args):
    from pathlib import Path

    from pocketbert.pipeline.distill import main
    from pocketbert.pipeline.recipe import DistillRecipe, load_recipe

    resume, overrides = args.resume, list(args.overrides)
    if isinstance(resume, str) and "=" in resume and not Path(resume).exists():
        overrides.append(resume)  # `--resume key=value`: the flag took an override as its folder
        resume = True
    cfg = load_recipe(DistillRecipe, args.recipe, overrides)
    result = main(cfg, resume=bool(resume), resume_dir=resume if isinstance(resume, str) else None)
    if not result:  # a non-zero torchrun rank: rank 0 reports
        return {}, ""
    best = f", best {result['best_metric']} {result['best_value']:.2f} at step {result['best_step']}" \
        if result.get("best_metric") else ""
    text = (f"wrote {result['out']}: {result['steps']} steps in {result['train_wall_s']:.0f} s, "
            f"final loss {result['final_loss']:.4f}{best}")
    return result, text
