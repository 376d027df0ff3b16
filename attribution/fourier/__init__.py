"""Fourier analysis under the p-biased product distribution B_p.

* :mod:`attribution.fourier.exact` -- exact spectra, degree weights, optimal affine
  datamodels, err and noise stability by enumerating all of ``{-1, +1}^N`` (small N).
"""
