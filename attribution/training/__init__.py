"""Batched trainers: Newton (float64) for convex models, torch.func for small MLPs."""
