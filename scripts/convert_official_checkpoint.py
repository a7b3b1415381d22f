#!/usr/bin/env python
"""Convert an official checkpoint into a Hugging Face `save_pretrained` folder.

    python scripts/convert_official_checkpoint.py --method amfmn \
        --checkpoint checkpoint/rsitmd/0/AMFMN_best.pth.tar --vocab vocab/rsitmd_splits_vocab.json --out amfmn-rsitmd

The folder (model.safetensors, config.json, processor files) then loads with
`AutoModel.from_pretrained(out)` / `AutoProcessor.from_pretrained(out)` after `import rs_retrieval`.
Methods are dispatched through the method registry (`register_method(..., converter=...)`).
"""

import sys

from rs_retrieval.cli import main as cli_main


def main(argv=None) -> int:
    """`rs-retrieval convert ARGS`: same options, one-line errors and exit status 2 for bad input."""
    return cli_main(["convert", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
