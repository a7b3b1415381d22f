"""Model parts shared by several methods: the retrieval contract, towers, image processor,
tokenizer families, losses and strict weight loading. Method folders import only from here (AMFMN
and GaLR also from `models.amfmn_family`, what only they use)."""
