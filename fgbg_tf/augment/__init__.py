"""The pose and appearance perturbations: thin-plate-spline warps and colour jitter."""
