"""torch.compile graph breaks of each method's forward (eval scoring and training loss), counted by
`torch._dynamo.explain` on the tiny test configs. Run on two checkouts to compare before/after:

    PYTHONPATH=src python scripts/graph_breaks.py
"""

import sys
from pathlib import Path

import torch
import torch._dynamo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tiny_methods import images, tiny_methods


def graph_breaks(model, batch: dict, train: bool):
    """(graph count, break count, break reasons) of one forward."""
    torch._dynamo.reset()
    model.train(train)
    extra = {"return_loss": True, "image_ids": torch.arange(len(batch["pixel_values"]))} if train else {}
    explanation = torch._dynamo.explain(lambda **inputs: model(**inputs, **extra))(**batch)
    reasons = [reason.reason.splitlines()[0] for reason in explanation.break_reasons]
    return explanation.graph_count, explanation.graph_break_count, reasons


def main() -> None:
    print("| method | mode | graphs | graph breaks | reasons |\n|---|---|---|---|---|")
    for name, (model, processor, texts, extra) in tiny_methods().items():
        batch = dict(processor(images=images(processor.image_processor.size), text=texts, **extra))
        for train in (False, True):
            graphs, breaks, reasons = graph_breaks(model, batch, train)
            print(
                f"| {name} | {'train (loss)' if train else 'eval (score)'} "
                f"| {graphs} | {breaks} | {'; '.join(sorted(set(reasons)))} |"
            )


if __name__ == "__main__":
    main()
