"""Scoring landmarks: metrics, the linear regression protocol, figures and training pictures."""
