"""The released RS CLIP checkpoints (docs/clip-zeroshot.md#published-numbers) and their published numbers
(a leaf module: plain data, read by the converter and the CLIP model cards).

Each release records the open_clip architecture, the activation it was trained with and the evidence for it
(docs/clip-zeroshot.md#the-activation-check), where the weights are published and under which licence, and the numbers
its authors (or a third party, marked) report. Nothing here is measured by rs_retrieval: the converter never downloads,
and no released weight file was available to us.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..records import ReportedResult

#: Provenance record a conversion writes next to the weights (read by the model card).
CONVERSION_RECORD = "conversion.json"

_REMOTECLIP = "RemoteCLIP README / assets/table-2.png (ChenDelong1999/RemoteCLIP a6a4787)"
_RS5M = "om-ai-lab/RS5M README (084cdd9)"
_SKYSCRIPT = (
    "wangzhecheng/SkyScript README (b16d2e7): average top-1 over "
    "AID, EuroSAT, fMoW, Million-AID, PatternNet, RESISC45, RSI-CB256"
)
_REMOTECLIP_ACT = (
    "quick_gelu by default [CONFLICT in the sources]: retrieval.py "
    "(the script that reproduces Table 2) builds the model with "
    "pretrained='openai', which meant QuickGELU in the open_clip of 2023; "
    "the README demo builds GELU (docs/clip-zeroshot.md#the-activation-check)"
)
_OPENAI_ACT = (
    "quick_gelu: initialised from OpenAI CLIP with open_clip <= 2.28, whose 'openai' "
    "path always built QuickGELU (docs/clip-zeroshot.md#the-activation-check)"
)


@dataclass(frozen=True)
class ZeroShotReport:
    dataset: str
    top1: float
    source: str


@dataclass(frozen=True)
class Release:
    id: str
    family: str
    arch: str
    hidden_act: str
    activation_evidence: str
    files: tuple[str, ...]
    where: str
    licence: ReleaseLicence
    paper: str
    retrieval: tuple[ReportedResult, ...] = ()
    zero_shot: tuple[ZeroShotReport, ...] = ()
    note: str = ""


def _row(family, variant, dataset, i2t, t2i, mr, source, note=""):
    return ReportedResult(family, variant, dataset, tuple(i2t), tuple(t2i), mr, source, note)


_PAPERS = {
    "remoteclip": (
        'F. Liu, D. Chen et al., "RemoteCLIP: A Vision Language Foundation Model for Remote '
        'Sensing", IEEE TGRS 62, 2024, doi:10.1109/TGRS.2024.3390838, arXiv:2306.11029'
    ),
    "georsclip": (
        'Z. Zhang et al., "RS5M and GeoRSCLIP: A Large Scale Vision-Language Dataset and A Large Vision-Language '
        'Model for Remote Sensing", IEEE TGRS 2024, doi:10.1109/TGRS.2024.3449154, arXiv:2306.11300'
    ),
    "skyclip": (
        'Z. Wang et al., "SkyScript: A Large and Semantically Diverse '
        'Vision-Language Dataset for Remote Sensing", AAAI 2024, arXiv:2312.12856'
    ),
}
_WHERE = {
    "remoteclip": "Hugging Face Hub chendelong/RemoteCLIP",
    "georsclip": "Hugging Face Hub Zilun/GeoRSCLIP (ckpt/)",
    "skyclip": (
        "S3 bucket opendatasharing.s3.us-west-2.amazonaws.com, prefix "
        "SkyScript/ckpt/ (zip; the weights are <name>/epoch_20.pt)"
    ),
}


@dataclass(frozen=True)
class ReleaseLicence:
    """What a release's card declares. `id` is the Hub licence id; `other` (with `name` and `link`)
    where the weights' terms are not one standard licence; `statement` says which document each
    licence comes from, code and weights separately when they differ."""

    id: str
    statement: str
    name: str | None = None
    link: str | None = None


_LICENCE = {
    "remoteclip": ReleaseLicence(
        "apache-2.0",
        "The repository that publishes these weights, "
        "github.com/ChenDelong1999/RemoteCLIP, is Apache-2.0 (its LICENSE "
        "file, added 2024-03-05); the weights' own Hub listing (chendelong/RemoteCLIP) carries no licence tag, so the "
        "repository's Apache-2.0 is the licence stated for them.",
    ),
    "georsclip": ReleaseLicence(
        "other",
        "Weights: the Hub card of Zilun/GeoRSCLIP declares `license: cc` without naming the Creative Commons variant "
        "(its first version said cc-by-4.0); that card governs the weights. Code: the repository "
        "github.com/om-ai-lab/RS5M is MIT, which covers its code, not the weights.",
        name="georsclip-weights-cc-unspecified",
        link="https://huggingface.co/Zilun/GeoRSCLIP",
    ),
    "skyclip": ReleaseLicence(
        "mit",
        "The repository github.com/wangzhecheng/SkyScript is MIT "
        "and states no separate licence for the weights it links.",
    ),
}


def _release(id, family, arch, act, evidence, files, retrieval=(), zero_shot=(), note=""):
    return Release(
        id,
        family,
        arch,
        act,
        evidence,
        tuple(files),
        _WHERE[family],
        _LICENCE[family],
        _PAPERS[family],
        tuple(retrieval),
        tuple(zero_shot),
        note,
    )


RELEASES: dict[str, Release] = {
    r.id: r
    for r in (
        _release(
            "remoteclip-vit-b-32",
            "remoteclip",
            "ViT-B-32",
            "quick_gelu",
            _REMOTECLIP_ACT,
            ["RemoteCLIP-ViT-B-32.pt"],
            [
                _row(
                    "remoteclip",
                    "RemoteCLIP ViT-B/32",
                    "rsitmd",
                    (27.88, 50.66, 65.71),
                    (22.17, 56.46, 73.41),
                    49.38,
                    _REMOTECLIP,
                ),
                _row(
                    "remoteclip",
                    "RemoteCLIP ViT-B/32",
                    "rsicd",
                    (17.02, 37.97, 51.51),
                    (13.71, 37.11, 54.25),
                    35.26,
                    _REMOTECLIP,
                ),
                _row(
                    "remoteclip",
                    "RemoteCLIP ViT-B/32",
                    "ucm_captions",
                    (20.48, 59.85, 83.33),
                    (18.67, 61.52, 94.29),
                    56.36,
                    _REMOTECLIP,
                ),
            ],
            [
                ZeroShotReport(
                    "AID", 77.96, "RemoteCLIP issue #18 (a user quoting the paper; OpenAI CLIP ViT-B/32: 68.62)"
                )
            ],
        ),
        _release(
            "remoteclip-vit-l-14",
            "remoteclip",
            "ViT-L-14",
            "quick_gelu",
            _REMOTECLIP_ACT,
            ["RemoteCLIP-ViT-L-14.pt"],
            [
                _row(
                    "remoteclip",
                    "RemoteCLIP ViT-L/14",
                    "rsitmd",
                    (28.76, 52.43, 63.94),
                    (23.76, 59.51, 74.73),
                    50.52,
                    _REMOTECLIP,
                ),
                _row(
                    "remoteclip",
                    "RemoteCLIP ViT-L/14",
                    "rsicd",
                    (18.39, 37.42, 51.05),
                    (14.73, 39.93, 56.58),
                    36.35,
                    _REMOTECLIP,
                ),
                _row(
                    "remoteclip",
                    "RemoteCLIP ViT-L/14",
                    "ucm_captions",
                    (19.05, 54.29, 80.95),
                    (17.71, 62.19, 93.90),
                    54.68,
                    _REMOTECLIP,
                ),
            ],
        ),
        _release(
            "remoteclip-rn50",
            "remoteclip",
            "RN50",
            "quick_gelu",
            _REMOTECLIP_ACT,
            ["RemoteCLIP-RN50.pt"],
            [
                _row(
                    "remoteclip",
                    "RemoteCLIP RN50",
                    "rsitmd",
                    (23.67, 47.57, 64.60),
                    (19.29, 51.55, 70.58),
                    46.21,
                    _REMOTECLIP,
                ),
                _row(
                    "remoteclip",
                    "RemoteCLIP RN50",
                    "rsicd",
                    (13.36, 32.94, 44.83),
                    (10.76, 32.83, 48.75),
                    30.58,
                    _REMOTECLIP,
                ),
            ],
            note="not convertible: the ResNet tower has no transformers class",
        ),
        _release(
            "georsclip-vit-b-32",
            "georsclip",
            "ViT-B-32",
            "quick_gelu",
            _OPENAI_ACT + "; the official loader uses pretrained='openai'",
            ["RS5M_ViT-B-32.pt"],
            [
                _row(
                    "georsclip",
                    "GeoRSCLIP ViT-B/32 (RS5M, no retrieval fine-tuning)",
                    "rsitmd",
                    (17.92, 34.96, 46.02),
                    (14.12, 41.46, 57.52),
                    35.33,
                    _RS5M + ' "All tasks"',
                ),
                _row(
                    "georsclip",
                    "GeoRSCLIP ViT-B/32 (RS5M, no retrieval fine-tuning)",
                    "rsicd",
                    (12.17, 28.45, 38.61),
                    (9.31, 26.51, 41.28),
                    26.06,
                    _RS5M + ' "All tasks"',
                ),
            ],
            [
                ZeroShotReport("AID", 74.42, _RS5M),
                ZeroShotReport("EuroSAT", 61.40, _RS5M),
                ZeroShotReport("RESISC45", 72.74, _RS5M),
            ],
        ),
        _release(
            "georsclip-vit-b-32-ret2",
            "georsclip",
            "ViT-B-32",
            "quick_gelu",
            _OPENAI_ACT,
            ["RS5M_ViT-B-32_RET-2.pt", "RS5M_ViT-B-32_retrieval.pt"],
            [
                _row(
                    "georsclip",
                    "GeoRSCLIP-FT ViT-B/32 (RS5M + RET-2)",
                    "rsitmd",
                    (32.30, 53.32, 67.92),
                    (25.04, 57.88, 74.38),
                    51.81,
                    _RS5M,
                ),
                _row(
                    "georsclip",
                    "GeoRSCLIP-FT ViT-B/32 (RS5M + RET-2)",
                    "rsicd",
                    (21.13, 41.72, 55.63),
                    (15.59, 41.19, 57.99),
                    38.87,
                    _RS5M,
                ),
            ],
        ),
        _release(
            "georsclip-vit-b-32-rsicd",
            "georsclip",
            "ViT-B-32",
            "quick_gelu",
            _OPENAI_ACT,
            ["RS5M_ViT-B-32_RSICD.pt"],
            [
                _row(
                    "georsclip",
                    "GeoRSCLIP-FT ViT-B/32 (RS5M + RSICD)",
                    "rsicd",
                    (22.14, 40.53, 51.78),
                    (15.26, 40.46, 57.79),
                    38.00,
                    _RS5M,
                    "the README's 'single target set' row",
                ),
            ],
        ),
        _release(
            "georsclip-vit-l-14",
            "georsclip",
            "ViT-L-14",
            "quick_gelu",
            "quick_gelu [UNVERIFIED]: no official loader; ITRA's default tag is 'openai'",
            ["RS5M_ViT-L-14.pt"],
        ),
        _release(
            "georsclip-vit-l-14-336",
            "georsclip",
            "ViT-L-14-336",
            "quick_gelu",
            "quick_gelu [UNVERIFIED]: no official loader; open_clip's only tag for this arch is 'openai'",
            ["RS5M_ViT-L-14-336.pt"],
        ),
        _release(
            "georsclip-vit-h-14",
            "georsclip",
            "ViT-H-14",
            "gelu",
            "gelu: the official loader builds it from laion2b_s32b_b79k (GELU)",
            ["RS5M_ViT-H-14.pt"],
            [
                _row(
                    "georsclip",
                    "GeoRSCLIP ViT-H/14 (RS5M, no retrieval fine-tuning)",
                    "rsitmd",
                    (23.45, 42.92, 53.32),
                    (18.01, 44.60, 59.96),
                    40.38,
                    _RS5M + ' "All tasks"',
                ),
                _row(
                    "georsclip",
                    "GeoRSCLIP ViT-H/14 (RS5M, no retrieval fine-tuning)",
                    "rsicd",
                    (14.27, 29.55, 40.44),
                    (11.38, 30.80, 44.41),
                    28.48,
                    _RS5M + ' "All tasks"',
                ),
            ],
            [
                ZeroShotReport("AID", 76.33, _RS5M),
                ZeroShotReport("EuroSAT", 67.47, _RS5M),
                ZeroShotReport("RESISC45", 73.83, _RS5M),
            ],
        ),
        _release(
            "skyclip-vit-l-14-top30",
            "skyclip",
            "ViT-L-14",
            "quick_gelu",
            _OPENAI_ACT + "; the SkyScript notebooks force QuickGELU for ViT-L-14",
            ["SkyCLIP_ViT_L14_top30pct"],
            zero_shot=[ZeroShotReport("7-dataset average", 59.91, _SKYSCRIPT)],
        ),
        _release(
            "skyclip-vit-l-14-top50",
            "skyclip",
            "ViT-L-14",
            "quick_gelu",
            _OPENAI_ACT,
            ["SkyCLIP_ViT_L14_top50pct"],
            zero_shot=[
                ZeroShotReport(
                    "7-dataset average",
                    59.93,
                    _SKYSCRIPT + " [CONFLICT: the README row is labelled SkyCLIP_ViT_B32_top50pct with type ViT-L14]",
                )
            ],
        ),
        _release(
            "skyclip-vit-l-14-top30-laionrs",
            "skyclip",
            "ViT-L-14",
            "quick_gelu",
            _OPENAI_ACT,
            ["SkyCLIP_ViT_L14_top30pct_filtered_by_CLIP_laion_RS"],
            zero_shot=[ZeroShotReport("7-dataset average", 60.69, _SKYSCRIPT)],
        ),
        _release(
            "skyclip-vit-l-14-top30-multiobj",
            "skyclip",
            "ViT-L-14",
            "quick_gelu",
            _OPENAI_ACT,
            ["SkyCLIP_ViT_L14_top30pct_multi_objects"],
        ),
        _release(
            "skyclip-vit-b-32-top50",
            "skyclip",
            "ViT-B-32",
            "gelu",
            "gelu: initialised from laion2b_e16 (GELU); the notebooks do not force QuickGELU",
            ["SkyCLIP_ViT_B32_top50pct"],
            zero_shot=[ZeroShotReport("7-dataset average", 53.02, _SKYSCRIPT)],
        ),
    )
}
