#!/usr/bin/env python
"""Convert an official checkpoint into a Hugging Face `save_pretrained` folder.

    python scripts/convert_official_checkpoint.py --method amfmn \
        --checkpoint checkpoint/rsitmd/0/AMFMN_best.pth.tar --vocab vocab/rsitmd_splits_vocab.json --out amfmn-rsitmd

The folder (model.safetensors, config.json, processor files) then loads with
`AutoModel.from_pretrained(out)` / `AutoProcessor.from_pretrained(out)` after `import rs_retrieval`.
Methods are dispatched through the method registry (`register_method(..., converter=...)`).
"""

import argparse
import sys

from rs_retrieval.convert.commands import add_convert_arguments, run_convert


def main(argv=None) -> int:
    parser = add_convert_arguments(argparse.ArgumentParser(description=__doc__.split("\n\n")[0]))
    return run_convert(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
