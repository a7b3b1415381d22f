"""Model parts shared by several methods: the retrieval contract, towers, image processor,
tokenizers, losses and strict weight loading. Method folders import only from here."""
