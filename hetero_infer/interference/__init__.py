"""Interference learning: features, random layers, profiling, regressors and predictors."""
