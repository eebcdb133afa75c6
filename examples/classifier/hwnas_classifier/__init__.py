"""A MobileNetV2-style classifier space (`mobilenet-v2`) and a digits task (`digits`): hwnas plugins
whose networks output a vector of class scores, not an image (entry points in pyproject.toml)."""

from hwnas_classifier.digits import DigitsClassification, DigitsOptions
from hwnas_classifier.space import MobileNetV2Config, MobileNetV2Space

__all__ = ["DigitsClassification", "DigitsOptions", "MobileNetV2Config", "MobileNetV2Space"]
