"""The trainer shared by every method, built on `accelerate`.

The model supplies its loss (`forward(..., return_loss=True, image_ids=...)`); the trainer owns
data loading, optimizer groups and schedule, gradient accumulation and clipping, mixed precision,
validation with retrieval metrics each epoch, model selection on validation mR, checkpoints
(`accelerator.save_state`) and exact resumption, logs and figures.

Batches: `training.batch_size` is the global batch per micro-step; with N processes each process
takes batch_size / N rows of it (accelerate `split_batches`), so the data order and the number of
optimizer steps do not depend on N. In-batch negatives are those of each process's share.

Run directory layout:
    recipe.yaml, training_args.json   the resolved recipe and environment
    val_split.json                    the seeded re-split, when the dataset has no validation split
    log.jsonl                         train records (per optimizer step window) and eval records
    checkpoints/step_N/               accelerate states (model, optimizer, scheduler, RNG) and
                                      trainer_state.json, written as step_N.partial and renamed once
                                      complete (marker file `checkpoint_complete.json` with each file's
                                      size and SHA-256), so a kill or a full disk never leaves a step_N
                                      that `--resume latest` would pick (see `checkpoints`)
    model/                            the selected model (best validation mR): save_pretrained + processor
    metrics.json, training_curves.png, retrieval_examples.png
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import ProjectConfiguration, broadcast_object_list, set_seed
from tqdm.auto import tqdm

from ..errors import OutputExistsError
from ..fileio import atomic_write_text, write_json_atomic
from ..models.common.processing import input_image_size
from .checkpoints import load_checkpoint, resolve_resume, save_checkpoint, step_folders
from .data import GENERATED_DATASETS, build_train_loader, caption_prior_for, load_splits, seeded_rngs, select_splits
from .experiment_trackers import LOGGING_DIR, PROJECT_NAME, resolve_trackers, tracker_config
from .model_setup import build_model_and_processor, save_model_dir
from .optim import build_optimizer, build_scheduler
from .plots import plot_retrieval_examples, plot_training_curves
from .recipe import EvaluationSpec, Recipe, RecipeError, dump_recipe, resolve_mixed_precision, resolve_model_config
from .run_log import JsonlLog, Throughput, read_log

logger = logging.getLogger(__name__)
SELECTION_METRIC = "mR"


@dataclasses.dataclass
class TrainerState:
    """Progress saved in every checkpoint (as trainer_state.json, see `checkpoints`)."""

    global_step: int = 0
    epoch: int = 0
    #: Micro-batches of `epoch` already consumed (skipped when resuming mid-epoch).
    batches_in_epoch: int = 0
    #: Lines of `log.jsonl` written so far (later lines are dropped on resume).
    log_records: int = 0
    best_metric: float = -math.inf
    best_epoch: int | None = None
    best_step: int | None = None
    best_metrics: dict | None = None
    last_metrics: dict | None = None
    last_eval_step: int | None = None
    #: Pairs and wall-clock seconds spent in training steps (evaluation and checkpoints excluded).
    train_pairs: int = 0
    train_seconds: float = 0.0

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def default_evaluate(model, processor, dataset, batch_size: int, evaluation: EvaluationSpec | None = None) -> dict:
    """Validation metrics (i2t/t2i R@K, mR) of the package's evaluator, without re-ranking,
    under the recipe's evaluation protocol."""
    from ..evaluation.evaluator import evaluate_retrieval

    metric_kwargs = (evaluation or EvaluationSpec()).metric_kwargs()
    return evaluate_retrieval(
        model, processor, dataset, rerank=("none",), batch_size=batch_size, progress=False, **metric_kwargs
    )["none"]


class Trainer:
    """Train one recipe. `datasets` (a DatasetDict or a (train, validation) pair of per-image
    datasets) replaces the recipe's `data` source; `evaluate_fn(model, processor, dataset,
    batch_size) -> metrics` replaces the package evaluator; `on_finish` callables receive the run
    directory once the model, metrics and figures are written (the CLI writes the model card)."""

    def __init__(
        self,
        recipe: Recipe,
        run_dir: str | Path | None = None,
        datasets=None,
        evaluate_fn=None,
        on_finish: Sequence[Callable[[Path], object]] = (),
    ):
        self.recipe = recipe
        default_dir = Path("runs") / f"{recipe.model.type}_{recipe.data.name or Path(recipe.data.path).name}"
        self.run_dir = Path(run_dir or recipe.output_dir or default_dir)
        self.datasets = datasets
        self.evaluate_fn = evaluate_fn or functools.partial(default_evaluate, evaluation=recipe.evaluation)
        self.on_finish = list(on_finish)

    # ---------------------------------------------------------------- setup
    def _splits(self, run_dir: Path | None):
        if self.datasets is None:
            generated = self.recipe.data.name in GENERATED_DATASETS
            return load_splits(
                self.recipe.data,
                run_dir,
                input_image_size(resolve_model_config(self.recipe.model)) if generated else None,
            )
        if isinstance(self.datasets, tuple):
            return self.datasets
        return select_splits(self.datasets, self.recipe.data, run_dir)

    def _prepare_run_dir(self, accelerator: Accelerator, resuming: bool) -> None:
        if not accelerator.is_main_process:
            return
        if not resuming and ((self.run_dir / "log.jsonl").exists() or step_folders(self.run_dir)):
            raise OutputExistsError(
                f"{self.run_dir} already holds a run; pass --resume latest to continue it or choose another output dir"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "recipe.yaml", dump_recipe(self.recipe))
        import accelerate
        import transformers

        write_json_atomic(
            self.run_dir / "training_args.json",
            {
                "recipe": self.recipe.to_dict(),
                "num_processes": accelerator.num_processes,
                "distributed_type": str(accelerator.distributed_type),
                "mixed_precision": accelerator.mixed_precision,  # what ran; the recipe's setting (e.g. "auto") is in `recipe`
                "versions": {
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "accelerate": accelerate.__version__,
                    "python": platform.python_version(),
                },
            },
        )

    # ---------------------------------------------------------------- main loop
    def train(self, resume: str | None = None) -> Path:
        """Run (or continue, with `resume` = "latest" or a checkpoint path) the recipe; returns the run dir."""
        recipe, t = self.recipe, self.recipe.training
        trackers = resolve_trackers(t.report_to)
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        accelerator = Accelerator(
            # Without this, ranks started by `accelerate launch --multi_gpu`/torchrun on a machine
            # with no accelerator each train alone (accelerate picks gloo only when told "cpu").
            cpu=world_size > 1 and not torch.accelerator.is_available(),
            mixed_precision=resolve_mixed_precision(t.mixed_precision),
            gradient_accumulation_steps=t.gradient_accumulation_steps,
            dataloader_config=DataLoaderConfiguration(split_batches=True),
            project_config=ProjectConfiguration(
                project_dir=str(self.run_dir), logging_dir=str(self.run_dir / LOGGING_DIR)
            ),
            log_with=trackers or None,
        )
        if accelerator.num_processes != world_size:
            raise RuntimeError(
                f"launched {world_size} processes but accelerate runs "
                f"{accelerator.num_processes}: they would train independently"
            )
        if t.batch_size % accelerator.num_processes:
            raise RecipeError(
                f"training.batch_size ({t.batch_size}) must be a multiple "
                f"of the number of processes ({accelerator.num_processes})"
            )
        checkpoint = resolve_resume(self.run_dir, resume) if resume else None
        self._prepare_run_dir(accelerator, resuming=checkpoint is not None)
        accelerator.wait_for_everyone()

        with accelerator.main_process_first():
            train_images, val_images = self._splits(self.run_dir if accelerator.is_main_process else None)
            from ..data import flatten_captions
            from ..data.views import warn_blank_captions

            flat_train = flatten_captions(train_images)
            if accelerator.is_main_process:
                warn_blank_captions(flat_train["caption"], "the training split")
        set_seed(t.seed)
        model, processor = build_model_and_processor(recipe, flat_train["caption"])
        # Dropout etc. draw from a per-process stream from here on.
        set_seed(t.seed + accelerator.process_index)

        collator_options = {"loss_input_names": model.loss_input_names}
        if model.uses_caption_prior:
            collator_options["caption_prior"], collator_options["captions_per_image"] = caption_prior_for(
                train_images, recipe.data.caption_prior
            )
        loader, _, collator = build_train_loader(
            flat_train, processor, t.batch_size, t.seed, t.num_workers, **collator_options
        )
        steps_per_epoch = math.ceil(len(loader) / t.gradient_accumulation_steps)
        total_steps = (
            steps_per_epoch * t.epochs if t.max_steps is None else min(t.max_steps, steps_per_epoch * t.epochs)
        )
        optimizer = build_optimizer(model, t)
        scheduler = build_scheduler(optimizer, t, steps_per_epoch, total_steps)
        model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
        state = TrainerState()
        if trackers:
            accelerator.init_trackers(PROJECT_NAME, config=tracker_config(recipe.to_dict()))
        log = JsonlLog(
            self.run_dir / "log.jsonl", write=accelerator.is_main_process, tracker=accelerator if trackers else None
        )
        if checkpoint is not None:
            state.load_state_dict(load_checkpoint(accelerator, checkpoint))
            log.truncate(state.log_records)
            accelerator.print(
                f"resumed from {checkpoint} at step {state.global_step} "
                f"(epoch {state.epoch}, batch {state.batches_in_epoch})"
            )

        loop = _Loop(self, accelerator, model, processor, optimizer, scheduler, state, log, val_images)
        # Closed on any exit, Ctrl-C included, so that what is printed next starts on its own line.
        with tqdm(
            total=total_steps,
            initial=state.global_step,
            disable=not accelerator.is_local_main_process,
            desc="train",
            dynamic_ncols=True,
        ) as progress:
            while state.epoch < t.epochs and state.global_step < total_steps:
                loader.set_epoch(state.epoch)
                collator.epoch = state.epoch
                batches = (
                    accelerator.skip_first_batches(loader, state.batches_in_epoch)
                    if state.batches_in_epoch
                    else loader
                )
                for batch in batches:
                    if loop.step(batch, progress):
                        progress.close()
                        accelerator.print(
                            f"stopped after step {state.global_step} (training.stop_after_steps), as if killed"
                        )
                        return self.run_dir
                    if state.global_step >= total_steps:
                        break
                else:
                    loop.end_epoch()
        if t.eval_every_epochs and state.last_eval_step != state.global_step:
            loop.validate()
        loop.checkpoint()
        self._finish(accelerator, model, processor, state, val_images)
        accelerator.end_training()
        return self.run_dir

    def _finish(self, accelerator, model, processor, state: TrainerState, val_images) -> None:
        """Write the final model (unless the best one is already there), metrics and figures."""
        if accelerator.is_main_process:
            if state.best_metrics is None:
                save_model_dir(accelerator.unwrap_model(model), processor, self.run_dir / "model")
            records = read_log(self.run_dir / "log.jsonl")
            metrics = {
                "selection": f"best validation {SELECTION_METRIC}"
                if state.best_metrics
                else "last step (no validation)",
                "protocol": self.recipe.evaluation.protocol,
                "best_epoch": state.best_epoch,
                "best_step": state.best_step,
                "validation": state.best_metrics,
                "last_validation": state.last_metrics,
                "global_step": state.global_step,
                "num_processes": accelerator.num_processes,
                "train_seconds": state.train_seconds,
                "train_pairs_per_s": state.train_pairs / state.train_seconds if state.train_seconds > 0 else None,
            }
            write_json_atomic(self.run_dir / "metrics.json", metrics)
            plot_training_curves(records, self.run_dir / "training_curves.png")
            if len(val_images):
                from ..models import load_retrieval_model, load_retrieval_processor

                final_model = load_retrieval_model(self.run_dir / "model")
                final_processor = load_retrieval_processor(self.run_dir / "model")
                with seeded_rngs(self.recipe.training.seed):
                    plot_retrieval_examples(
                        final_model,
                        final_processor,
                        val_images,
                        self.run_dir / "retrieval_examples.png",
                        num_queries=self.recipe.training.num_example_queries,
                        batch_size=self.recipe.training.eval_batch_size,
                    )
            # Last, so that a problem there (e.g. a model card) cannot cost the model, metrics or figures.
            for callback in self.on_finish:
                callback(self.run_dir)
        accelerator.wait_for_everyone()


class _Loop:
    """Per-step and per-epoch work of one `Trainer.train` call (kept apart to keep `train` readable)."""

    def __init__(
        self,
        trainer: Trainer,
        accelerator,
        model,
        processor,
        optimizer,
        scheduler,
        state: TrainerState,
        log: JsonlLog,
        val_images,
    ):
        self.trainer, self.accelerator, self.model, self.processor = trainer, accelerator, model, processor
        self.optimizer, self.scheduler, self.state, self.log, self.val_images = (
            optimizer,
            scheduler,
            state,
            log,
            val_images,
        )
        self.training = trainer.recipe.training
        self.window: list[torch.Tensor] = []
        self.term_names: list[str] | None = None
        self.throughput = Throughput()
        self.lrs: list[float] = []

    def step(self, batch: dict, progress) -> bool:
        """One micro-batch; returns True when the run must stop as if killed (`stop_after_steps`)."""
        t, accelerator, state = self.training, self.accelerator, self.state
        self.model.train()
        with accelerator.accumulate(self.model):
            output = self.model(**batch, return_loss=True)
            accelerator.backward(output.loss)
            if accelerator.sync_gradients:
                if t.max_grad_norm:
                    accelerator.clip_grad_norm_(self.model.parameters(), t.max_grad_norm)
                self.lrs = [group["lr"] for group in self.optimizer.param_groups]
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad()
        terms = output.loss_terms or {}
        if self.term_names is None:
            self.term_names = sorted(terms)
        self.window.append(
            torch.stack([output.loss.detach().float()] + [terms[k].detach().float() for k in self.term_names])
        )
        self.throughput.add(t.batch_size)
        state.batches_in_epoch += 1
        if not accelerator.sync_gradients:
            return False
        state.global_step += 1
        progress.update(1)
        saving = t.checkpoint_every_steps is not None and state.global_step % t.checkpoint_every_steps == 0
        if saving or state.global_step % t.log_every_steps == 0:
            self.flush_log(progress)
        if saving:
            self.checkpoint()
        return t.stop_after_steps is not None and state.global_step >= t.stop_after_steps

    def flush_log(self, progress=None) -> None:
        """Log the window's mean loss (over micro-batches and processes), lr and throughput."""
        if not self.window:
            return
        values = self.accelerator.reduce(
            torch.stack(self.window).mean(0).to(self.accelerator.device), reduction="mean"
        ).tolist()
        self.window = []
        if not math.isfinite(values[0]):
            raise FloatingPointError(
                f"training loss is {values[0]} around step {self.state.global_step} "
                f"(loss terms {dict(zip(self.term_names, values[1:]))}); "
                f"lower training.lr or set training.max_grad_norm, and resume from a checkpoint before it"
            )
        record = {"kind": "train", "step": self.state.global_step, "epoch": self.state.epoch, "loss": values[0]}
        record.update({f"loss/{name}": value for name, value in zip(self.term_names, values[1:])})
        for group, lr in zip(self.optimizer.param_groups, self.lrs):
            record[f"lr/{group.get('name', 'default')}"] = lr
        pairs, seconds = self.throughput.window()
        self.state.train_pairs += pairs
        self.state.train_seconds += seconds
        record["pairs_per_s"] = pairs / seconds if seconds > 0 else math.nan
        self.log.log(record)
        if progress is not None:
            progress.set_postfix(loss=f"{values[0]:.4g}", epoch=self.state.epoch)

    def end_epoch(self) -> None:
        self.flush_log()
        epoch = self.state.epoch
        if self.training.eval_every_epochs and (epoch + 1) % self.training.eval_every_epochs == 0:
            self.validate()
        self.state.epoch += 1
        self.state.batches_in_epoch = 0

    def validate(self) -> None:
        """Retrieval metrics on the validation images (main process), shared with every process."""
        accelerator, state = self.accelerator, self.state
        self.flush_log()
        metrics = None
        if accelerator.is_main_process and len(self.val_images):
            model = accelerator.unwrap_model(self.model)
            with seeded_rngs(self.training.seed), torch.no_grad():
                metrics = dict(
                    self.trainer.evaluate_fn(model, self.processor, self.val_images, self.training.eval_batch_size)
                )
            if SELECTION_METRIC not in metrics:
                raise KeyError(f"the evaluator returned no {SELECTION_METRIC!r} (got {sorted(metrics)})")
        metrics = broadcast_object_list([metrics])[0]
        self.model.train()
        if metrics is None:
            return
        state.last_metrics, state.last_eval_step = metrics, state.global_step
        self.log.log({"kind": "eval", "step": state.global_step, "epoch": state.epoch, **metrics})
        if metrics[SELECTION_METRIC] > state.best_metric:
            state.best_metric, state.best_epoch, state.best_step, state.best_metrics = (
                metrics[SELECTION_METRIC],
                state.epoch,
                state.global_step,
                metrics,
            )
            if accelerator.is_main_process:
                save_model_dir(accelerator.unwrap_model(self.model), self.processor, self.trainer.run_dir / "model")
        accelerator.wait_for_everyone()
        self.throughput.restart()

    def checkpoint(self) -> None:
        """Save a checkpoint of this step (`checkpoints.save_checkpoint`) with the log flushed first."""
        self.flush_log()
        self.state.log_records = self.log.count
        save_checkpoint(
            self.accelerator,
            self.trainer.run_dir,
            self.state.state_dict(),
            self.state.global_step,
            self.state.epoch,
            keep=self.training.keep_checkpoints,
        )
        self.throughput.restart()


def train(recipe: Recipe, run_dir: str | Path | None = None, resume: str | None = None, **trainer_kwargs) -> Path:
    """Train a recipe (see `Trainer`); returns the run directory."""
    return Trainer(recipe, run_dir=run_dir, **trainer_kwargs).train(resume=resume)
