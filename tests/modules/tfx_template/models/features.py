"""Feature names, as the taxi template's models/features.py keeps them."""

NUMERIC_FEATURE_KEYS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL_FEATURE_KEYS = ["island", "sex"]
LABEL_KEY = "species"
OOV_SIZE = 1


def transformed_name(key: str) -> str:
    return key + "_xf"
