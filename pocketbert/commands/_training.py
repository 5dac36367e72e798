"""What `pocketbert distill`, `pretrain` and `finetune` share: recipe + overrides + --resume, and the summary."""


def add_arguments(p) -> None:
    p.add_argument("recipe", help="recipe YAML file, or the name of a shipped recipe (pipeline/recipes/*.yaml)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. train.max_steps=100")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="WORK_DIR",
                   help="continue from the saved training state (default folder: <out>.work)")


def run(args, recipe_cls, main):
    """Load the recipe (with overrides), run the stage's `main`, and summarise its result."""
    from pathlib import Path

    from pocketbert.pipeline.recipe import load_recipe

    resume, overrides = args.resume, list(args.overrides)
    if isinstance(resume, str) and "=" in resume and not Path(resume).exists():
        overrides.append(resume)  # `--resume key=value`: the flag took an override as its folder
        resume = True
    cfg = load_recipe(recipe_cls, args.recipe, overrides)
    result = main(cfg, resume=bool(resume), resume_dir=resume if isinstance(resume, str) else None,
                  command=args.command_line)
    if not result:  # a non-zero torchrun rank: rank 0 reports
        return {}, ""
    best = f", best {result['best_metric']} {result['best_value']:.2f} at step {result['best_step']}" \
        if result.get("best_metric") else ""
    text = (f"wrote {result['out']}: {result['steps']} steps in {result['train_wall_s']:.0f} s, "
            f"final loss {result['final_loss']:.4f}{best}")
    return result, text
