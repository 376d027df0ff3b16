"""Data sources: scikit-learn bundled sets, .npz/.csv files and the synthetic oracle."""
