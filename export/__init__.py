"""The PyTorch side: model zoo, training, ONNX export, engine build (``python -m export``)."""
