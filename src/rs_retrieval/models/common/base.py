"""The retrieval-model contract every method implements.

A retrieval model encodes images and texts separately (so encoder outputs can be cached) and then
scores every image against every text. Methods whose score depends on the pair (AMFMN's gate,
CMPAGL's fusion re-rank) override `score`; plain dual encoders only implement the two encoders.

Evaluators, the trainer and `search` only use this interface:

* `encode_images(**image_inputs) -> dict[str, Tensor]`: per-image tensors, first dim = batch.
* `encode_texts(**text_inputs) -> dict[str, Tensor]`: per-text tensors, first dim = batch.
* `score(image_cache, text_cache) -> Tensor [N_img, N_txt]` on caches concatenated over batches.
* `forward(pixel_values, input_ids, attention_mask, return_loss=..., **extra) -> RetrievalOutput`.
"""

import logging

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from ...errors import RSRetrievalError
from ...runtime import tune_malloc_once
from .outputs import RetrievalOutput
from .push_to_hub import RetrievalModelPushMixin

logger = logging.getLogger(__name__)


class WeightMismatchError(RSRetrievalError, ValueError):
    """Saved weights do not fit the model the config describes (missing or unexpected keys)."""


class RetrievalPreTrainedModel(RetrievalModelPushMixin, PreTrainedModel):
    """Base class: subclasses define `get_image_features(pixel_values, **image_inputs)`,
    `get_text_features(input_ids, attention_mask)` and `compute_loss`; pair-dependent methods
    also override `similarity` or `score`. `vision_tower_path`/`text_tower_path` name the
    submodules that `from_pretrained_towers` fills with pretrained backbone weights.
    """

    vision_tower_path: str | None = None
    text_tower_path: str | None = None

    #: Naming rule: the method's `model_type` (checked by `register_method`).
    base_model_prefix = ""
    main_input_name = "pixel_values"
    #: True where a tower's layers can recompute activations in backward (BERT layers).
    supports_gradient_checkpointing = False
    #: Keys of `encode_images`'s output that `score` needs; the evaluator caches exactly these.
    image_cache_keys: tuple[str, ...] = ("embeds",)
    text_cache_keys: tuple[str, ...] = ("embeds",)
    #: True when `score` on a block of images or texts equals that block of the full matrix, so
    #: evaluators may split large matrices; False where candidates depend on the whole set
    #: (CMPAGL's top-k fusion re-rank).
    score_is_blockwise: bool = True
    #: False where `score` is not the cosine of the `embeds` (AMFMN's image-guided gate, CMPAGL's
    #: fusion re-rank): a vector index then uses that cosine only to pick candidates and
    #: `score` re-ranks them (two-stage search, `rs_retrieval.index`).
    score_is_cosine: bool = True
    #: Extra `forward` keyword inputs that go to `compute_loss` (not to the image encoder),
    #: e.g. AMFMN's `prior_similarity`, CMPAGL's `scene_ids`.
    loss_input_names: tuple[str, ...] = ()

    def __init__(self, config, *args, **kwargs):
        # The allocator lever the command line applies (`rs_retrieval.runtime`), for library users
        # too: every encoder call and training step re-faults its freed activations without it.
        tune_malloc_once()
        super().__init__(config, *args, **kwargs)

    @property
    def uses_caption_prior(self) -> bool:
        """True when training needs `prior_similarity` (the trainer computes the caption prior)."""
        return False

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, allow_weight_mismatch: bool = False, **kwargs):
        """`PreTrainedModel.from_pretrained`, strict: a weight file that lacks parameters of the
        config's model (left random) or holds parameters it does not use is an error, because the
        results would change on every run. `allow_weight_mismatch=True` loads anyway, loudly."""
        from transformers.utils import logging as transformers_logging

        wants_info = kwargs.pop("output_loading_info", False)
        verbosity = transformers_logging.get_verbosity()
        transformers_logging.set_verbosity_error()  # its key table would come before our one-line message
        try:
            model, info = super().from_pretrained(
                pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs
            )
        finally:
            transformers_logging.set_verbosity(verbosity)
        problems = [
            f"{len(keys)} {kind.replace('_', ' ')} (e.g. {', '.join(sorted(map(str, keys))[:3])})"
            for kind, keys in info.items()
            if kind in ("missing_keys", "unexpected_keys", "mismatched_keys") and keys
        ]
        if problems:
            message = (
                f"weights in {pretrained_model_name_or_path} do not "
                f"fit its config ({cls.__name__}): {'; '.join(problems)}"
            )
            if not allow_weight_mismatch:
                raise WeightMismatchError(
                    f"{message}. Fix config.json or the weights; allow_weight_mismatch=True "
                    "(--allow-weight-mismatch) loads with random layers"
                )
            logger.warning(
                "%s; loading anyway (allow_weight_mismatch): missing "
                "layers are RANDOM and results are not reproducible",
                message,
            )
        return (model, info) if wants_info else model

    @classmethod
    def from_pretrained_towers(
        cls, config, vision_model_name_or_path=None, text_model_name_or_path=None, vocab=None, **kwargs
    ):
        """A randomly initialised model whose backbones start from pretrained weights
        (a local directory or Hub id of a transformers `ResNetModel`/`SwinModel`/`BertModel`).

        `vocab` is the processor's vocabulary, for methods whose pretrained text weights are
        indexed by it (AMFMN/GaLR skip-thought); the others ignore it."""
        from .towers import load_tower_weights

        model = cls(config, **kwargs)
        for path, source in (
            (cls.vision_tower_path, vision_model_name_or_path),
            (cls.text_tower_path, text_model_name_or_path),
        ):
            if source is None:
                continue
            if path is None:
                raise ValueError(f"{cls.__name__} has no pretrained tower to load {source!r} into")
            load_tower_weights(model.get_submodule(path), source)
        return model

    def encode_images(self, pixel_values: torch.Tensor, **image_inputs) -> dict[str, torch.Tensor]:
        return {"embeds": self.get_image_features(pixel_values, **image_inputs)}

    def encode_texts(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        return {"embeds": self.get_text_features(input_ids, attention_mask)}

    def similarity(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """Cosine similarity matrix [N_img, N_txt]; pair-dependent methods override."""
        return F.normalize(image_embeds, dim=-1) @ F.normalize(text_embeds, dim=-1).t()

    def score(self, image_cache: dict[str, torch.Tensor], text_cache: dict[str, torch.Tensor]) -> torch.Tensor:
        """Full retrieval score matrix from cached encoder outputs (used at evaluation/search time)."""
        return self.similarity(image_cache["embeds"], text_cache["embeds"])

    def training_logits(
        self, image_outputs: dict[str, torch.Tensor], text_outputs: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """Score matrix the training loss is computed on; by default the retrieval `score`
        (CMPAGL trains on its first-stage cosine and never re-ranks in training)."""
        return self.score(image_outputs, text_outputs)

    def compute_loss(
        self,
        image_outputs: dict[str, torch.Tensor],
        text_outputs: dict[str, torch.Tensor],
        logits_per_image: torch.Tensor,
        image_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Training loss for a batch of matched pairs (row i of images matches row i of texts)."""
        raise TypeError(f"{type(self).__name__} defines no training loss")

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        return_loss: bool = False,
        image_ids: torch.Tensor | None = None,
        **inputs,
    ) -> RetrievalOutput:
        """Score a batch of images against a batch of texts.

        With `return_loss=True` row i of the images must match row i of the texts; `image_ids`
        (optional) marks texts that share an image so losses can ignore those false negatives.
        Keyword `inputs` named in `loss_input_names` go to `compute_loss`, the rest to
        `encode_images` (e.g. GaLR's local graph).

        With only images or only texts, the output holds just `image_embeds` or `text_embeds`
        (what the `image-feature-extraction` and `feature-extraction` pipelines read).
        """
        inputs.pop("token_type_ids", None)  # BERT tokenizers add it in pipelines; every text tower uses one segment
        if pixel_values is None or input_ids is None:
            return self._single_modality_forward(pixel_values, input_ids, attention_mask, return_loss, **inputs)
        loss_inputs = {name: inputs.pop(name) for name in self.loss_input_names if name in inputs}
        image_outputs = self.encode_images(pixel_values, **inputs)
        text_outputs = self.encode_texts(input_ids, attention_mask)
        loss, loss_terms = None, None
        if return_loss:
            logits_per_image = self.training_logits(image_outputs, text_outputs)
            loss, loss_terms = self.compute_loss(
                image_outputs, text_outputs, logits_per_image, image_ids, **loss_inputs
            )
        else:
            logits_per_image = self.score(image_outputs, text_outputs)
        return RetrievalOutput(
            loss=loss,
            logits_per_image=logits_per_image,
            logits_per_text=logits_per_image.t(),
            image_embeds=image_outputs["embeds"],
            text_embeds=text_outputs["embeds"],
            loss_terms=loss_terms,
        )

    def _single_modality_forward(
        self, pixel_values, input_ids, attention_mask, return_loss: bool, **inputs
    ) -> RetrievalOutput:
        if pixel_values is None and input_ids is None:
            raise ValueError(f"{type(self).__name__}.forward needs pixel_values, input_ids or both")
        if return_loss:
            raise ValueError("return_loss=True needs both pixel_values and input_ids (matched pairs)")
        if input_ids is None:
            for name in self.loss_input_names:
                inputs.pop(name, None)
            return RetrievalOutput(image_embeds=self.get_image_features(pixel_values, **inputs))
        return RetrievalOutput(text_embeds=self.get_text_features(input_ids, attention_mask))
