"""Export retrieval models to other runtimes (`onnx`: encoders and score heads for onnxruntime)."""
