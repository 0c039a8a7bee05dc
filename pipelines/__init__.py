"""VideoTranslator's core pipeline: plain Python stages, no Ray.

Heavy dependencies (faster-whisper, llama.cpp, piper) are imported inside the stage
modules that need them, so ``import pipelines`` stays cheap.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
