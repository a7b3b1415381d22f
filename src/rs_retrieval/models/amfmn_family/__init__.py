"""What AMFMN and its fork GaLR share and no other method uses: the family's config, model base
and processor (`family`), the ResNet + MVSA visual branch, the skip-thought text encoder and its
weight loader, and the reference word-level tokenizer."""
