"""INT8 calibration: calibration sets built with the device's own preprocessing, and quantization."""
