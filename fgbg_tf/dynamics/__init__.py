"""Landmark dynamics for video prediction: the per-frame state encoding and the LSTM that moves the Gaussians."""
